"""The generate model's batches and decode loops outside Triton (radon.model_repository.batches,
radon.model_repository.decoder): responses per token or one per request, batches that mix budgets and
stop words, cancellation, failures, and the BLS loop's remote session against the runtime itself."""

from __future__ import annotations

import numpy as np
import pytest

import radon.runtime
from radon.errors import ConfigError, RadonError
from radon.model_repository.batches import run_requests
from radon.model_repository.decoder import GenerateSettings, RemoteDecoderSession, open_generator, run_decoder
from radon.runtime.batching import Plan, group, left_pad
from radon.runtime.generator import Generator
from radon.runtime.session import DecoderSession

GREEDY = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": None}


class Sink:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.sent: list[tuple[str, bool]] = []
        self.generated: list[int] = []  # the row's token count when each response was sent
        self.counts: list[dict] = []  # num_input_tokens / num_output_tokens of each response
        self.errors: list[str] = []
        self.cancel_after = cancel_after

    def send(self, text: str, final: bool, generated, counts=None) -> None:
        assert not (self.sent and self.sent[-1][1]), "a response after the final one"
        self.sent.append((text, final))
        self.generated.append(generated())
        self.counts.append(counts or {})

    def fail(self, message: str) -> None:
        self.errors.append(message)

    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.sent) >= self.cancel_after

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.sent)


def plan_for(gen, prompt: str, n: int, stream: bool = True, stops=(), **params) -> Plan:
    return Plan(gen.tokenizer.encode(prompt, add_bos=True), n, GREEDY | params, list(stops), stream)


def test_group(text_gen):
    plans = [plan_for(text_gen, "a", 2), plan_for(text_gen, "b", 2, seed=1), plan_for(text_gen, "c", 2),
             plan_for(text_gen, "d", 2, temperature=0.5), plan_for(text_gen, "e", 2), plan_for(text_gen, "f", 2)]  # fmt: skip
    assert group(plans, max_batch=2) == [[0, 2], [1], [3], [4, 5]]
    assert group(plans, max_batch=8) == [[0, 2, 4, 5], [1], [3]]


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad=3)
    assert ids.tolist() == [[5, 6, 7], [3, 3, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_stream_and_single_responses_in_one_batch(text_gen):
    prompts = [("Привет, мир", 20, True), ("Hello there", 7, False), ("def f(x):", 33, True)]
    plans = [plan_for(text_gen, p, n, stream=s) for p, n, s in prompts]
    sinks = [Sink() for _ in plans]
    counts = run_requests(text_gen, plans, sinks, max_batch=4)
    assert counts == [20, 7, 33]
    for (prompt, n, stream), sink in zip(prompts, sinks):
        assert sink.text == text_gen.generate_text(prompt, n)
        assert [final for _, final in sink.sent] == ([False] * (n - 1) + [True] if stream else [True])
        # sent as each token came (this sink sends at once), or once, after the last token
        assert sink.generated == (list(range(1, n + 1)) if stream else [n])
        assert not sink.errors


def test_stop_words_and_cancellation(text_gen):
    full = text_gen.generate_text("Hello there", 30)
    # a 4-character stop string whose first occurrence is where we cut (the model may repeat itself)
    cut = next(
        i for i in range(4, len(full) - 4) if full.find(full[i : i + 4]) == i and full[i : i + 4].strip()
    )
    stop = full[cut : cut + 4]
    plans = [plan_for(text_gen, "Hello there", 30, stops=[stop]), plan_for(text_gen, "Hello there", 30)]
    sinks = [Sink(), Sink(cancel_after=5)]
    run_requests(text_gen, plans, sinks, max_batch=4, cancel_check_s=0.0)  # ask at every step
    assert sinks[0].text == full[:cut] and sinks[0].sent[-1][1]
    assert (
        len(sinks[1].sent) == 6 and sinks[1].sent[-1][1]
    )  # noticed at the next step, ended with a final response


def test_cancellation_is_polled_not_asked_every_step(text_gen):
    class Counting(Sink):
        asked = 0

        def cancelled(self) -> bool:
            Counting.asked += 1
            return False

    # an interval no run outlasts: the first step asks, and no later one (each ask is a round trip to
    # the server); with cancel_check_s=0 every step asks (test_stop_words_and_cancellation)
    plans, never = [plan_for(text_gen, "Hello there", 60)], float("inf")
    run_requests(text_gen, plans, [Counting()], max_batch=1, cancel_check_s=never)
    assert Counting.asked == 1


def test_a_failing_generator_fails_each_unfinished_request(text_gen):
    class Broken:
        pad_token_id = 0

        def stream(self, *args, **kwargs):
            yield from []
            raise RadonError("decoder: boom")

    sinks = [Sink(), Sink()]
    run_requests(Broken(), [plan_for(text_gen, "a", 3), plan_for(text_gen, "b", 3)], sinks, max_batch=4)  # type: ignore[arg-type]
    assert [s.errors for s in sinks] == [["generation failed: decoder: boom"]] * 2


def test_remote_session_matches_the_runtime_past_the_window(text_artifact, text_gen):
    local = DecoderSession(text_artifact, threads=1)
    calls = []

    def forward(feeds, wanted):
        calls.append({k: v.shape for k, v in feeds.items()})
        return run_decoder(local, feeds, wanted)

    gen = Generator(RemoteDecoderSession(local.manifest, forward), text_gen.tokenizer, cache="copy")
    ids, mask = text_gen.encode(["Привет, мир", "Hi"])
    expected = text_gen.generate(ids, 40, attention_mask=mask)  # window 16: the cache rolls
    assert np.array_equal(gen.generate(ids, 40, attention_mask=mask), expected)
    assert gen.providers == ["triton-bls"]
    pasts = [c["past_key_values.0.key"][2] for c in calls]
    assert pasts[0] == 0 and max(pasts) == local.manifest.kv_cache.keep  # empty past first, then W - 1


def test_run_decoder_refuses_by_name(text_artifact):
    local = DecoderSession(text_artifact, threads=1)
    feeds = {n: np.zeros((1, 1), np.int64) for n in ("input_ids", "attention_mask", "position_ids")}
    with pytest.raises(RadonError, match="^past_key_values.0.key: required input"):
        run_decoder(local, feeds)
    for spec in local.manifest.inputs[3:]:
        feeds[spec.name] = np.zeros((1, 2, 0, 16), np.float32)
    assert set(run_decoder(local, feeds)) == set(local.manifest.output_names)
    with pytest.raises(RadonError, match="^nope: not an output"):
        run_decoder(local, feeds, ["nope"])
    with pytest.raises(RadonError, match="^input_ids: expected 2 dims"):
        run_decoder(local, {**feeds, "input_ids": np.zeros(3, np.int64)})


def test_settings_from_config_parameters():
    s = GenerateSettings.from_parameters(
        {"decode_loop": {"string_value": "bls"}, "max_batch": {"string_value": "4"}}
    )
    assert (s.decode_loop, s.max_batch, s.threads) == ("bls", 4, 0)
    assert GenerateSettings.from_parameters(s.to_parameters()) == s
    with pytest.raises(ConfigError, match="^decode_loop: expected"):
        GenerateSettings.from_parameters({"decode_loop": "fast"})
    with pytest.raises(ConfigError, match="^max_batch: expected an integer"):
        GenerateSettings.from_parameters({"max_batch": "many"})
    with pytest.raises(ConfigError, match="^colour: not a parameter"):
        GenerateSettings.from_parameters({"colour": "red"})


def test_open_generator_in_process_and_bls(text_artifact, text_gen, tmp_path):
    (tmp_path / "radon_decoder").symlink_to(text_artifact.parent)
    settings = GenerateSettings(artifact=f"radon_decoder/{text_artifact.name}", threads=1)
    gen = open_generator(settings, tmp_path)
    assert gen.generate_text("Hello", 12) == text_gen.generate_text("Hello", 12)
    with pytest.raises(ConfigError, match="needs a forward function"):
        open_generator(GenerateSettings(decode_loop="bls", artifact=settings.artifact), tmp_path)
    local = radon.runtime.load(text_artifact, threads=1).session
    bls = open_generator(GenerateSettings(decode_loop="bls", artifact=settings.artifact), tmp_path,
                         lambda feeds, wanted: run_decoder(local, feeds, wanted))  # fmt: skip
    assert bls.generate_text("Hello", 12) == text_gen.generate_text("Hello", 12)


def test_echo_and_token_counts(text_gen):
    """exclude_input_in_output false puts the prompt first; num_output_tokens per response sums to the
    tokens generated (as Triton's OpenAI frontend adds a stream's up), num_input_tokens is the prompt's."""
    prompt = "Hello there"
    ids = text_gen.tokenizer.encode(prompt, add_bos=True)
    reply = {"echo": prompt, "num_input_tokens": len(ids), "num_output_tokens": True}
    plans = [Plan(ids, 9, GREEDY, [], stream, reply=reply) for stream in (True, False)]
    sinks = [Sink(), Sink()]
    run_requests(text_gen, plans, sinks, max_batch=1)
    text = text_gen.generate_text(prompt, 9)
    for sink in sinks:
        assert sink.text == prompt + text
        assert sum(c["num_output_tokens"] for c in sink.counts) == 9
        assert {c["num_input_tokens"] for c in sink.counts} == {len(ids)}
    assert [c["num_output_tokens"] for c in sinks[0].counts] == [1] * 9 and sinks[1].counts[0][
        "num_output_tokens"
    ] == 9
    assert sinks[0].sent[0][0].startswith(prompt)
    quiet = Sink()
    run_requests(text_gen, [Plan(ids, 3, GREEDY, [], False)], [quiet], max_batch=1)
    assert quiet.counts == [{}] and quiet.text == text_gen.generate_text(prompt, 3)


def test_pad_id_fills_the_left_padding_and_changes_no_text(text_gen):
    plans = [plan_for(text_gen, p, 12, stream=False) for p in ("Привет, мир", "Hi")]
    padded = [plan_for(text_gen, p, 12, stream=False, pad_token_id=7) for p in ("Привет, мир", "Hi")]
    sinks, padded_sinks = [Sink(), Sink()], [Sink(), Sink()]

    class Spy:
        def __init__(self):
            self.pad_token_id, self.inner, self.fed = text_gen.pad_token_id, text_gen, None

        def stream(self, ids, **kwargs):
            self.fed = ids.copy()
            return self.inner.stream(ids, **kwargs)

    spy = Spy()
    run_requests(text_gen, plans, sinks, max_batch=2)
    run_requests(spy, padded, padded_sinks, max_batch=2)  # type: ignore[arg-type]
    assert spy.fed[1, 0] == 7 and [s.text for s in padded_sinks] == [s.text for s in sinks]
