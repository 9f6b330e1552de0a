"""An OpenAI-compatible server for the deployed stack: the tests' fake, speaking the real
chat.completions streaming format with a pause between tokens, like a model thinking. It runs
in its own container on the compose network, where an operator would run Ollama or vLLM.

    python -m tests.deploy.fake_llm   (listens on 0.0.0.0:8000)
"""
from aiohttp import web

from scripts.loopback import FakeProvider, Slow, openai_app

PIECES = ["Our", " workshop", " opens", " at", " nine", " on", " weekdays", ",", " and", " we",
          " answer", " every", " question", " in", " order", "."]

if __name__ == "__main__":
    web.run_app(openai_app(FakeProvider(script=[Slow(pieces=PIECES, gap_s=0.12)])), host="0.0.0.0", port=8000,
                print=None)
