from raycv.cli import entry

entry()
