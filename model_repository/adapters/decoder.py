"""radon_decoder on the python backend: one onnxruntime forward pass per request, contract-4 IO by name.

For servers without the onnxruntime backend (the ``nvidia-pytriton`` build has the python backend
only), this stands in for ``platform: "onnxruntime_onnx"`` with the same inputs and outputs, so the
generate model and other clients cannot tell them apart. The artifact (``model.onnx``, manifest,
tokenizer) sits in ``1/artifact/``, apart from this file and the ``__pycache__/`` Python writes beside it
(an artifact folder holds only what its manifest lists); ``radon.model_repository.decoder.run_decoder``
does the work. The ``threads``
parameter sets onnxruntime's intra-op threads (0: onnxruntime's choice).
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from radon.model_repository.decoder import run_decoder
from radon.runtime.session import DecoderSession


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        threads = int(params.get("threads", {}).get("string_value", "0") or 0)
        folder = Path(args["model_repository"]) / args["model_version"] / "artifact"
        self.session = DecoderSession(folder, threads=threads or None)

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            feeds = {}
            for name in self.session.manifest.input_names:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:
                    feeds[name] = tensor.as_numpy()
            try:
                outs = run_decoder(self.session, feeds, request.requested_output_names())
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller as an error
                error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outs.items()]))
        return responses
