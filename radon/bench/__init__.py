"""RADON's benchmarks, apart from the code they measure.

- ``radon.bench.runtime``: ``radon bench ARTIFACT [--compare]``, the edge runtime's speed against its
  peers (optimum, onnxruntime-genai, llama.cpp), each engine in its own worker process
  (``worker``; peers built by ``peers``, crashes read by ``crash``, tables written by ``report``);
- ``radon.bench.architectures``: ``radon bench --architectures A B``, the seed's GPT-2 against Mistral
  comparison in PyTorch.

Nothing is imported here: ``python -m radon.bench.worker`` runs in the peers' own interpreters.
"""
