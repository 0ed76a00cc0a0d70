"""radon_tokenizer: ``text_input`` (BYTES [1]) -> ``input_ids`` (INT64 [-1], right-padded), ``input_lengths``.

A python-backend model in the shape of Triton's python_backend examples (``examples/add_sub``); the
work is ``radon.model_repository.text.encode_texts`` over the artifact's tokenizer, copied to
``1/tokenizer/``. The ``add_special_tokens`` parameter (true by default) adds the tokenizer's own special
tokens, as the runtime and transformers' ``tokenizer(text)`` do (bos for RADON's types; what an ``hf``
tokenizer's post-processor adds).
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from radon.model_repository.text import as_texts, encode_texts
from radon.tokenizer import load_tokenizer


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = load_tokenizer(folder / "tokenizer")
        params = json.loads(args["model_config"]).get("parameters", {})
        flag = params.get("add_special_tokens", {}).get("string_value", "true")
        self.add_special_tokens = flag.lower() == "true"

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                tensor = pb_utils.get_input_tensor_by_name(request, "text_input")
                texts = as_texts(None if tensor is None else tensor.as_numpy())
                ids, lengths = encode_texts(self.tokenizer, texts, self.add_special_tokens)
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller as an error
                error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            outputs = [pb_utils.Tensor("input_ids", ids), pb_utils.Tensor("input_lengths", lengths)]
            responses.append(pb_utils.InferenceResponse(outputs))
        return responses
