import asyncio

from services.ai.coalesce import coalesce


async def _pieces(items, gaps=None):
    for i, item in enumerate(items):
        if gaps and gaps[i]:
            await gaps[i].wait()
        yield item


async def test_first_token_goes_out_alone_then_pieces_are_batched_until_a_phrase_ends():
    sent = []

    async def emit(text):
        sent.append(text)

    words = ["Hello ", "there, ", "how ", "are ", "you? ", "I ", "am ", "fine."]
    full = await coalesce(_pieces(words), emit, interval_s=60)
    assert full == "".join(words)
    assert sent == ["Hello ", "there, how are you? ", "I am fine."]


async def test_a_quiet_provider_does_not_hold_buffered_text_back():
    sent = []
    release = asyncio.Event()

    async def emit(text):
        sent.append(text)

    task = asyncio.create_task(coalesce(_pieces(["A ", "b ", "c"], [None, None, release]), emit, interval_s=0.02))
    deadline = asyncio.get_running_loop().time() + 5
    while sent != ["A ", "b "] and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert sent == ["A ", "b "], "buffered text was not flushed while the provider was quiet"
    release.set()
    assert await task == "A b c"
    assert sent == ["A ", "b ", "c"]


async def test_many_tokens_become_few_chunks():
    sent = []

    async def emit(text):
        sent.append(text)

    tokens = [f"w{i} " for i in range(300)]
    await coalesce(_pieces(tokens), emit, interval_s=60)
    assert "".join(sent) == "".join(tokens)
    assert len(sent) <= 2
