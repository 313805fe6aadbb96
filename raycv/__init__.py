"""raycv: leak-free, fold-parallel cross-validation of multimodal classifiers on Ray."""

__version__ = "0.2.0"
