"""radon_detokenizer: ``token_ids`` (INT64 [-1]) [+ ``sequence_length`` (INT32 [1])] -> ``text_output``.

A python-backend model in the shape of Triton's python_backend examples (``examples/add_sub``); the
work is ``radon.model_repository.text.decode_ids`` over the artifact's tokenizer (``1/tokenizer/``).
Special tokens are skipped unless the ``skip_special_tokens`` parameter is false. It decodes whole
sequences: the generate model streams text itself, because streaming detokenization is stateful (a
character split across byte-level tokens) and stop strings need the text.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from radon.model_repository.text import as_bytes_column, decode_ids
from radon.tokenizer import load_tokenizer


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = load_tokenizer(folder / "tokenizer")
        params = json.loads(args["model_config"]).get("parameters", {})
        self.skip = params.get("skip_special_tokens", {}).get("string_value", "true").lower() == "true"

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            ids = pb_utils.get_input_tensor_by_name(request, "token_ids")
            lengths = pb_utils.get_input_tensor_by_name(request, "sequence_length")
            try:
                texts = decode_ids(self.tokenizer, None if ids is None else ids.as_numpy(),
                                   None if lengths is None else lengths.as_numpy(), self.skip)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller as an error
                error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor("text_output", as_bytes_column(texts))])
            )
        return responses
