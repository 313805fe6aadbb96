"""Model branches: the metadata forest, the image CNN, and their late fusion."""
