"""Seed the demo tenant and chatbot through the public API (idempotent across runs)."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
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
                    await add_owner(http, gateway, demo, state_file)
                    await add_conversations(http, gateway, demo, state_file)
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
        save(state_file, demo)
        await add_owner(http, gateway, demo, state_file)
        await add_conversations(http, gateway, demo, state_file)
    return demo


def save(state_file: Path, demo: dict) -> None:
    state_file.write_text(json.dumps(demo, indent=2))
    state_file.chmod(0o600)


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


DEMO_OWNER = "owner@northwind.example"


async def add_owner(http: aiohttp.ClientSession, gateway: str, demo: dict, state_file: Path) -> None:
    """The demo tenant's owner, who signs in to the console (docs/console.md): invited with the
    tenant's key and signed up with a random password, kept in the state file (mode 600)."""
    if demo.get("owner_password"):
        return
    async with http.post(f"{gateway}/api/v1/invites", json={"email": DEMO_OWNER, "role": "owner"},
                         headers={"Authorization": f"Bearer {demo['api_key']}"}) as resp:
        resp.raise_for_status()
        invite = await resp.json()
    password = secrets.token_urlsafe(12)
    async with http.post(f"{gateway}/api/v1/auth/invites/{invite['token']}/accept", json={"password": password}) as resp:
        if resp.status != 200:  # an owner from an earlier run whose state file is gone
            print(f"[seed] the demo owner could not sign up ({resp.status}); invite link: {invite['url']}")
            return
    demo.update(owner_email=DEMO_OWNER, owner_password=password)
    save(state_file, demo)


# A first day's worth of visitors, so the console's conversations and analytics have something
# to show: answered questions (one rated up, one down), a follow-up, a question the FAQ does
# not answer, and a visitor who asks for a person.
DEMO_VISITORS = [
    {"ask": ["What are your opening hours?"], "rate": "up"},
    {"ask": ["Do you repair e-bikes?", "How long does it take?"]},
    {"ask": ["Can I rent a bike?"], "rate": "down", "comment": "I wanted the price per day"},
    {"ask": ["Do you sell skateboards?"]},
    {"ask": ["Can I pay in instalments?"], "handoff": True},
]


async def add_conversations(http: aiohttp.ClientSession, gateway: str, demo: dict, state_file: Path,
                            wait_s: float = 60) -> None:
    """Demo visitors chat through the widget API, as the widget on the demo page would."""
    if demo.get("conversations_seeded"):
        return
    widget = f"{gateway}/api/widget/v1/{demo['embed_id']}"
    origin = {"Origin": os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8080").rstrip("/")}
    for n, visitor in enumerate(DEMO_VISITORS):
        async with http.post(f"{widget}/conversations", headers=origin) as resp:
            resp.raise_for_status()
            conversation = await resp.json()
        cid = conversation["conversation_id"]
        headers = {**origin, "Authorization": f"Bearer {conversation['visitor_token']}"}
        reply = None
        for m, text in enumerate(visitor["ask"]):
            async with http.post(f"{widget}/conversations/{cid}/messages", headers=headers,
                                 json={"text": text, "client_message_id": f"demo-{n}-{m}"}) as resp:
                resp.raise_for_status()
            reply = await _reply(http, f"{widget}/conversations/{cid}/messages", headers, m + 1, wait_s)
        if reply and visitor.get("rate"):
            async with http.post(f"{widget}/conversations/{cid}/replies/{reply['id']}/feedback", headers=headers,
                                 json={"rating": visitor["rate"], "comment": visitor.get("comment", "")}) as resp:
                resp.raise_for_status()
        if visitor.get("handoff"):
            async with http.post(f"{widget}/conversations/{cid}/handoff", headers=headers) as resp:
                resp.raise_for_status()
    demo["conversations_seeded"] = True
    save(state_file, demo)
    print(f"[seed] {len(DEMO_VISITORS)} demo conversations")


async def _reply(http: aiohttp.ClientSession, url: str, headers: dict, nth: int, wait_s: float) -> dict | None:
    """The conversation's nth assistant reply once it has ended (None if it does not in time)."""
    for _ in range(int(wait_s * 4)):
        async with http.get(url, headers=headers) as resp:
            resp.raise_for_status()
            replies = [m for m in (await resp.json())["data"] if m["role"] == "assistant"]
        if len(replies) >= nth and replies[nth - 1]["status"] in ("completed", "failed"):
            return replies[nth - 1]
        await asyncio.sleep(0.25)
    return None
