"""Seed the demo tenant and chatbot through the public API (idempotent across runs)."""
from __future__ import annotations

import json
from pathlib import Path

import aiohttp

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
    state_file.write_text(json.dumps(demo, indent=2))
    state_file.chmod(0o600)
    return demo
