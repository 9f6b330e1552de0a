"""Seed the demo tenant and chatbot through the public API (idempotent across runs)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

FAQ = Path(__file__).parent / "demo" / "northwind-faq.md"

DEMO_CHATBOT = {
    "name": "Aria from Northwind Bikes",
    "persona": {
        "system_prompt": "You are Aria, the friendly assistant of Northwind Bikes, a bicycle shop in Utrecht. "
                         "Answer from the shop's knowledge; if it does not say, say you don't know.",
        "tone": "warm and concise",
        "greeting": "Hi, I'm Aria from Northwind Bikes! Ask me about our bikes, repairs or opening hours.",
        "fallback_answer": "I'm sorry, I don't know that yet. You can reach the shop at hello@northwind.example.",
    },
    "welcome_message": "Hi there! I can help with bikes, repairs and opening hours.",
    "suggested_questions": ["What are your opening hours?", "Do you repair e-bikes?", "Can I rent a bike?"],
    "placement": {"primary_colour": "#0f766e", "launcher_text": "Ask Aria"},
}


async def seed(gateway: str, admin_key: str, state_file: Path) -> dict:
    async with aiohttp.ClientSession() as http:
        if state_file.exists():
            demo = json.loads(state_file.read_text())
            async with http.get(f"{gateway}/api/v1/chatbots/{demo['chatbot_id']}",
                                headers={"Authorization": f"Bearer {demo['api_key']}"}) as resp:
                if resp.status == 200:
                    await add_knowledge(http, gateway, demo)
                    return demo
        async with http.post(f"{gateway}/api/v1/admin/tenants", json={"name": "Northwind Bikes (demo)"},
                             headers={"Authorization": f"Bearer {admin_key}"}) as resp:
            resp.raise_for_status()
            tenant = await resp.json()
        api_key = tenant["api_key"]["key"]
        async with http.post(f"{gateway}/api/v1/chatbots", json=DEMO_CHATBOT,
                             headers={"Authorization": f"Bearer {api_key}"}) as resp:
            resp.raise_for_status()
            chatbot = await resp.json()
        demo = {"tenant_id": tenant["tenant"]["id"], "api_key": api_key, "chatbot_id": chatbot["id"],
                "embed_id": chatbot["embed_id"]}
        await add_knowledge(http, gateway, demo)
    state_file.write_text(json.dumps(demo, indent=2))
    state_file.chmod(0o600)
    return demo


async def add_knowledge(http: aiohttp.ClientSession, gateway: str, demo: dict, wait_s: float = 120) -> None:
    """The demo shop's FAQ, so the demo answers real questions with a citation."""
    headers = {"Authorization": f"Bearer {demo['api_key']}"}
    base = f"{gateway}/api/v1/chatbots/{demo['chatbot_id']}/knowledge"
    async with http.post(f"{base}/documents/text", headers=headers, json={
            "text": FAQ.read_text(), "title": "Northwind Bikes FAQ", "format": "markdown"}) as resp:
        if resp.status == 409:  # already there
            return
        resp.raise_for_status()
        document = await resp.json()
    for _ in range(int(wait_s * 4)):
        async with http.get(f"{base}/documents/{document['id']}", headers=headers) as resp:
            status = (await resp.json())["status"]
        if status in ("indexed", "failed"):
            print(f"[seed] demo knowledge {status}")
            return
        await asyncio.sleep(0.25)
