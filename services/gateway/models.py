"""Request and response bodies of the gateway's public API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Provider = Literal["local", "openai", "anthropic"]


class Strict(BaseModel):
    # unknown fields are refused, so a client cannot smuggle tenant_id or limits in
    model_config = ConfigDict(extra="forbid")


class TenantIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class ApiKeyOut(BaseModel):
    id: str
    name: str
    scope: str
    created_at: datetime
    key: str | None = Field(None, description="The full key; returned once, at creation.")


class TenantCreated(BaseModel):
    tenant: TenantOut
    api_key: ApiKeyOut


class ChatbotConfig(Strict):
    system_prompt: str = Field("You are a helpful assistant for this website.", max_length=8000)
    tone: str = Field("friendly", max_length=200)
    greeting: str = Field("Hi! How can I help you today?", max_length=1000)
    fallback_answer: str = Field("I'm sorry, I don't have an answer to that yet.", max_length=1000)
    provider: Provider = "local"
    model: str = Field("local-extractive", max_length=200)
    temperature: float = Field(0.2, ge=0, le=2)
    max_tokens: int = Field(512, ge=1, le=8192)
    fallback_provider: Provider | None = None
    top_k: int = Field(5, ge=1, le=50)
    score_threshold: float = Field(0.0, ge=0, le=1)
    allowed_origins: list[str] = Field(default_factory=list, max_length=50)
    avatar_id: uuid.UUID | None = None


class ChatbotIn(ChatbotConfig):
    name: str = Field(min_length=1, max_length=200)


class ChatbotOut(ChatbotConfig):
    model_config = ConfigDict(extra="ignore")
    id: uuid.UUID
    name: str
    embed_id: str
    created_at: datetime
    updated_at: datetime


class ConversationIn(Strict):
    visitor_id: uuid.UUID | None = Field(
        None, description="A returning visitor's id, from an earlier conversation's response.")


class ConversationStarted(BaseModel):
    conversation_id: uuid.UUID
    visitor_id: uuid.UUID
    visitor_token: str
    greeting: str


class MessageIn(Strict):
    text: str = Field(min_length=1)
    client_message_id: str = Field(min_length=1, max_length=100,
                                   description="Chosen by the client; a retry with the same id is not a new message.")


class MessageAccepted(BaseModel):
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    status: Literal["accepted"] = "accepted"
