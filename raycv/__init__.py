"""raycv: leak-free, fold-parallel cross-validation of multimodal classifiers on Ray."""

__version__ = "0.2.0"


def __getattr__(name: str):
    # `raycv.predict(run, data)` for notebooks, imported on first use so that `import
    # raycv` (and the CLI's instant refusals) stay free of torch and scikit-learn
    if name == "predict":
        from raycv.prediction import predict

        return predict
    raise AttributeError(f"module 'raycv' has no attribute {name!r}")
