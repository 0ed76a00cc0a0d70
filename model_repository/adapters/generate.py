"""The generate model (``radon`` by default): decoupled python backend, BLS, one response per token.

In the shape of python_backend's ``examples/decoupled`` (``get_response_sender()``, the last response
flagged final) and ``examples/bls`` (``InferenceRequest(...).exec()``). Per ``execute``: one BLS call to
``radon_tokenizer`` for the prompts (a chat in ``messages`` goes through the chat template of the same
tokenizer here, ``Generator.encode_chat``), each request checked (``radon.model_repository.request``), then
batches generated (``batches``) by the ``decode_loop``'s generator (``decoder``); docs/triton.md.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from radon.errors import RadonError
from radon.model_repository.batches import SendQueue, run_requests
from radon.model_repository.decoder import GenerateSettings, open_generator
from radon.model_repository.request import INPUT_NAMES, RequestError, plan_all, response_outputs
from radon.model_repository.text import as_bytes_column, unpad

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class _Sink:
    """One request's responses (radon.model_repository.batches.ResponseSink), sent by the model's SendQueue
    so that the decode loop never waits on a response's round trip to the server."""

    def __init__(self, request, sends: SendQueue) -> None:
        self.sender, self.sends = request.get_response_sender(), sends

    def _text(self, text: str, final: bool, generated, counts) -> None:  # generated() is read as it leaves
        out = [pb_utils.Tensor(name, v) for name, v in response_outputs(text, generated(), counts).items()]
        self.sender.send(pb_utils.InferenceResponse(out), flags=FINAL if final else 0)

    def _error(self, message: str, code) -> None:
        self.sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code)), flags=FINAL)

    def send(self, text: str, final: bool, generated, counts=None) -> None:
        self.sends.put(self._text, text, final, generated, counts)

    def refuse(self, message: str) -> None:  # the client's mistake: HTTP 400, a gRPC error
        self.sends.put(self._error, message, pb_utils.TritonError.INVALID_ARG)

    def fail(self, message: str) -> None:  # the server's failure
        self.sends.put(self._error, message, pb_utils.TritonError.INTERNAL)

    def cancelled(self) -> bool:
        return self.sender.is_cancelled()


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.settings = GenerateSettings.from_parameters(config.get("parameters", {}))
        decode = lambda feeds, wanted: self._bls(self.settings.decoder_model, feeds, wanted)  # noqa: E731
        self.gen = open_generator(self.settings, Path(args["model_repository"]).parent, decode)
        self.sends = SendQueue()

    def finalize(self) -> None:
        self.sends.close()

    def _bls(self, model: str, inputs: dict, wanted: list) -> dict:
        tensors = [pb_utils.Tensor(name, value) for name, value in inputs.items()]
        response = pb_utils.InferenceRequest(
            model_name=model, requested_output_names=wanted, inputs=tensors
        ).exec()
        if response.has_error():
            raise RadonError(f"{model}: {response.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in wanted}

    def _tokenize(self, texts: list) -> list:
        out = self._bls(self.settings.tokenizer_model, {"text_input": as_bytes_column(texts)},
                        ["input_ids", "input_lengths"])  # fmt: skip
        return unpad(out["input_ids"], out["input_lengths"])

    def execute(self, requests: list) -> None:
        sinks = [_Sink(r, self.sends) for r in requests]
        inputs = []
        for r in requests:
            tensors = {name: pb_utils.get_input_tensor_by_name(r, name) for name in INPUT_NAMES}
            inputs.append(({k: t.as_numpy() for k, t in tensors.items() if t is not None}, r.parameters()))
        try:
            results = plan_all(inputs, self._tokenize, tokenize_chat=self.gen.encode_chat,
                               manifest=self.gen.manifest, max_tokens_limit=self.settings.max_tokens_limit,
                               max_prompt_tokens=self.settings.max_prompt_tokens or None,
                               encode_words=self.gen.tokenizer.encode)  # fmt: skip
        except RadonError as exc:  # the tokenizer model failed: every request of this call
            for sink in sinks:
                sink.fail(str(exc))
            return None
        plans, live = [], []
        for sink, result in zip(sinks, results):
            if isinstance(result, RequestError):
                sink.refuse(str(result))
            else:
                plans.append(result)
                live.append(sink)
        run_requests(self.gen, plans, live, self.settings.max_batch)
        self.sends.drain()  # back-pressure: the next batch starts once these responses are out
