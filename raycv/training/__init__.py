"""Plain-torch training: never imports ray. Progress leaves through a callback it is handed."""
