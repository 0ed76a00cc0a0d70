"""The ``model.py`` files of the generated repository, one per model, copied as ``<model>/1/model.py``.

Each is a thin adapter (a few dozen lines) in the shape of Triton's python_backend examples
(``TritonPythonModel`` with ``initialize`` and ``execute``): it turns ``pb_utils`` tensors into numpy
arrays and back, and calls functions that are tested outside Triton: ``radon.model_repository``'s
``request``, ``batches``, ``decoder`` and ``text``, over ``radon.runtime``. They import
``triton_python_backend_utils``, which only the python backend's stub provides, so nothing imports them
outside a server: ``radon.model_repository.build`` copies them as files.
"""
