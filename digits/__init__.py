"""The plumbing around the networks: everything that touches the outside world.

Dataset files and downloads (`datasets`, `idx`, `downloads`), the one atomic file writer
(`files`), model and checkpoint files (`archive` and `treejson`, the container;
`modelfile`, what models and checkpoints hold), a training run on disk (`runs`,
`reports`), the original notebook's parameters (`notebook`), image files and photos of
digits (`imagefiles`, `photos`; whole numbers in one photo: `segment`), plots (`plots`),
the web app (`serve` and its page in `static/`), ONNX export (`onnx_export`) and the
process-wide malloc setting of the command-line tools (`allocator`). The math lives in
`nets/` and `autodiff/` and never imports from here.

    from digits import load_model
    model = load_model("models/mnist-mlp.npz")
    model.predict(images)          # images (n, 28, 28) in [0, 1]
"""

__all__ = ["TrainedModel", "load_model"]


def __getattr__(name: str) -> object:
    # Imported on first use, so that `import digits.console` (the first thing the
    # command-line tools do) does not wait for NumPy.
    if name in __all__:
        from digits import modelfile

        return getattr(modelfile, name)
    raise AttributeError(f"module 'digits' has no attribute {name!r}")
