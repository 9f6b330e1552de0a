"""Request and response bodies of the gateway's public API. The OpenAPI document is generated
from these same models, so it cannot drift from what the gateway does."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

Provider = Literal["local", "openai", "anthropic"]
Scope = Literal["full", "read", "chat"]
Position = Literal["bottom-right", "bottom-left"]
AvatarLayout = Literal["stage", "compact", "hidden"]


def _no_local_voice(value: str | None) -> str | None:
    if value == "local":
        raise ValueError("the 'local' voice is not offered: the only offline voice engine (piper) is GPL-3.0; "
                         "use 'provider' (an OpenAI-compatible /audio/speech) or 'none'. See docs/avatar.md.")
    return value


Voice = Annotated[Literal["none", "provider", "local"], AfterValidator(_no_local_voice)]
VOICE_DOC = ("Speech for replies: `none` (default) or `provider` (the tenant's, else the platform's "
             "OpenAI-compatible `/audio/speech`). `local` is refused (docs/avatar.md says why).")
VoiceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", examples=["alloy"])]
AVATAR_LAYOUT_DOC = ("How the widget shows the avatar: `stage` (large, above the messages), `compact` (small, in "
                     "the header) or `hidden` (no avatar). See docs/avatar.md.")

_COLOUR = r"^#[0-9a-fA-F]{6}$"
# free text may be anything we can store faithfully: no NUL characters
NO_NUL = r"^[^\x00]*$"

Origin = Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", max_length=300,
                              examples=["https://shop.example"]),
                   AfterValidator(str.lower)]
Colour = Annotated[str, Field(pattern=_COLOUR, examples=["#4f46e5"])]


class Strict(BaseModel):
    # unknown fields are refused, so a client cannot smuggle tenant_id or plan limits in;
    # and no type coercion: "5" is not a number, as the OpenAPI document says
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    # query strings are text by nature, so they are parsed leniently (limit=20 is a number)
    model_config = ConfigDict(extra="forbid")


def _iso_datetime(value):
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("use an ISO 8601 timestamp, e.g. 2026-11-01T00:00:00Z") from None
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ErrorDetail(Out):
    code: str
    message: str
    details: object | None = None


class ErrorBody(Out):
    error: ErrorDetail


# --- tenants and keys ------------------------------------------------------------------------

class PlanLimits(Strict):
    max_chatbots: int = Field(10, ge=0, le=100_000)
    max_documents: int = Field(500, ge=0, le=10_000_000)
    monthly_message_quota: int = Field(10_000, ge=0, le=1_000_000_000)


class PlanLimitsPatch(Strict):
    max_chatbots: int | None = Field(None, ge=0, le=100_000)
    max_documents: int | None = Field(None, ge=0, le=10_000_000)
    monthly_message_quota: int | None = Field(None, ge=0, le=1_000_000_000)


# an address a person can receive mail at, checked by shape only (no mail is sent here): one @,
# no spaces or control characters, a dotted domain
Email = Annotated[str, Field(pattern=r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$",
                             max_length=254, examples=["owner@shop.example"])]
Password = Annotated[str, Field(min_length=10, max_length=200, pattern=NO_NUL,
                                description="10 to 200 characters")]
Role = Literal["owner", "editor", "viewer"]


class TenantIn(Strict):
    name: str = Field(pattern=NO_NUL, min_length=1, max_length=200)
    limits: PlanLimits = PlanLimits()
    owner_email: Email | None = Field(None, description=(
        "Invite this person as the tenant's first owner: the answer carries the invite link."))


class TenantPatch(Strict):
    name: str = Field(pattern=NO_NUL, min_length=1, max_length=200)


class TenantDeleteIn(Strict):
    confirm: str = Field(min_length=1, max_length=200, description=(
        "Your tenant's id or its exact name: deleting a tenant erases all of its data, for good."))


class AdminTenantPatch(Strict):
    name: str | None = Field(None, pattern=NO_NUL, min_length=1, max_length=200)
    limits: PlanLimitsPatch | None = None


class PlanUsage(Out):
    month: str
    messages: int
    monthly_message_quota: int
    chatbots: int
    max_chatbots: int


class TenantOut(Out):
    id: uuid.UUID
    name: str
    limits: PlanLimits
    created_at: datetime


class TenantWithUsage(TenantOut):
    usage: PlanUsage


class ApiKeyIn(Strict):
    name: str = Field("", pattern=NO_NUL, max_length=200)
    scope: Scope = "full"


class ApiKeyOut(Out):
    id: str
    name: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None = None
    key: str | None = Field(None, pattern=NO_NUL, description="The full key `ak_live_<id>_<secret>`; returned once, at creation.")


class InviteLink(Out):
    url: str
    token: str
    expires_at: datetime


class TenantCreated(Out):
    tenant: TenantOut
    api_key: ApiKeyOut
    owner_invite: InviteLink | None = Field(None, description="When `owner_email` was sent: the owner's invite.")


# --- console users and sessions (docs/console.md) --------------------------------------------

class LoginIn(Strict):
    email: Email
    password: str = Field(min_length=1, max_length=200)


class AdminLoginIn(Strict):
    admin_key: str = Field(min_length=1, max_length=200)


class TenantRef(Out):
    id: uuid.UUID
    name: str
    role: Role


class UserRef(Out):
    id: uuid.UUID
    email: str


class SessionInfo(Out):
    user: UserRef | None = Field(description="null for the platform admin")
    admin: bool
    tenant: TenantRef | None = Field(description="The tenant this session works in")
    tenants: list[TenantRef] = Field(description="Every tenant the user belongs to")
    csrf_token: str = Field(description="Send it as X-CSRF-Token with every request that changes something")
    expires_at: datetime
    idle_expires_at: datetime


class InviteInfo(Out):
    email: str
    tenant_name: str
    role: Role
    expires_at: datetime
    existing_user: bool


class AcceptInviteIn(Strict):
    password: Password = Field(description="A new user's password; an existing user's own password")


class ResetInfo(Out):
    email: str


class NewPasswordIn(Strict):
    password: Password


class SwitchTenantIn(Strict):
    tenant_id: uuid.UUID


class PasswordChangeIn(Strict):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: Password


class UserOut(Out):
    id: uuid.UUID
    email: str
    role: Role
    created_at: datetime = Field(description="When they joined this tenant")
    last_login_at: datetime | None = None


class UserList(Out):
    data: list[UserOut]


class RolePatch(Strict):
    role: Role


class InviteIn(Strict):
    email: Email
    role: Role


class InviteOut(Out):
    id: uuid.UUID
    email: str
    role: Role
    expires_at: datetime
    created_at: datetime


class InviteCreated(InviteOut):
    url: str
    token: str


class InviteList(Out):
    data: list[InviteOut]


class ResetLink(Out):
    url: str
    token: str
    expires_at: datetime


# --- chatbots --------------------------------------------------------------------------------

class Persona(Strict):
    system_prompt: str = Field("You are a helpful assistant for this website.", pattern=NO_NUL, max_length=8000)
    tone: str = Field("friendly", pattern=NO_NUL, max_length=200)
    greeting: str = Field("Hi! How can I help you today?", pattern=NO_NUL, max_length=1000)
    fallback_answer: str = Field("I'm sorry, I don't have an answer to that yet.", pattern=NO_NUL, max_length=1000)


class Placement(Strict):
    position: Position = "bottom-right"
    primary_colour: Colour = "#4f46e5"
    background_colour: Colour = "#ffffff"
    text_colour: Colour = "#111827"
    launcher_text: str = Field("Chat with us", pattern=NO_NUL, max_length=60)
    open_on_load: bool = False


class AiSettings(Strict):
    provider: Provider = "local"
    model: str = Field("local-extractive", pattern=NO_NUL, min_length=1, max_length=200)
    temperature: float = Field(0.2, ge=0, le=2)
    max_tokens: int = Field(512, ge=1, le=8192)
    fallback_provider: Provider | None = None


class KnowledgeSettings(Strict):
    top_k: int = Field(5, ge=1, le=50)
    score_threshold: float = Field(0.0, ge=0, le=1)


class ChatbotFields(Strict):
    persona: Persona = Persona()
    placement: Placement = Placement()
    welcome_message: str = Field("", pattern=NO_NUL, max_length=1000)
    suggested_questions: list[Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=10)
    allowed_origins: list[Origin] = Field(
        default_factory=list, max_length=50,
        description="Origins whose pages may use the widget. Empty: any origin.")
    avatar_layout: AvatarLayout = Field("stage", description=AVATAR_LAYOUT_DOC)
    voice: Voice = Field("none", description=VOICE_DOC)
    voice_name: VoiceName = Field("alloy", description="The provider's voice, e.g. `alloy`.")
    voice_model: VoiceName = Field("tts-1", description="The provider's speech model, e.g. `tts-1`.")
    ai: AiSettings = AiSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()


AVATAR_ID_DESCRIPTION = ("The avatar the chatbot shows (null: the default one). The avatar service keeps "
                         "this choice: read it with GET /api/v1/chatbots/{chatbot_id}/avatar.")


class ChatbotIn(ChatbotFields):
    name: str = Field(pattern=NO_NUL, min_length=1, max_length=200)
    avatar_id: uuid.UUID | None = Field(None, description=AVATAR_ID_DESCRIPTION)


class PersonaPatch(Strict):
    system_prompt: str | None = Field(None, pattern=NO_NUL, max_length=8000)
    tone: str | None = Field(None, pattern=NO_NUL, max_length=200)
    greeting: str | None = Field(None, pattern=NO_NUL, max_length=1000)
    fallback_answer: str | None = Field(None, pattern=NO_NUL, max_length=1000)


class PlacementPatch(Strict):
    position: Position | None = None
    primary_colour: Colour | None = None
    background_colour: Colour | None = None
    text_colour: Colour | None = None
    launcher_text: str | None = Field(None, pattern=NO_NUL, max_length=60)
    open_on_load: bool | None = None


class AiSettingsPatch(Strict):
    provider: Provider | None = None
    model: str | None = Field(None, pattern=NO_NUL, min_length=1, max_length=200)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    fallback_provider: Provider | None = None


class KnowledgeSettingsPatch(Strict):
    top_k: int | None = Field(None, ge=1, le=50)
    score_threshold: float | None = Field(None, ge=0, le=1)


class ChatbotPatch(Strict):
    """Only the fields sent change; nested objects merge field by field."""
    name: str | None = Field(None, pattern=NO_NUL, min_length=1, max_length=200)
    persona: PersonaPatch | None = None
    placement: PlacementPatch | None = None
    welcome_message: str | None = Field(None, pattern=NO_NUL, max_length=1000)
    suggested_questions: list[Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]] | None = Field(None, max_length=10)
    allowed_origins: list[Origin] | None = Field(None, max_length=50)
    avatar_id: uuid.UUID | None = Field(None, description=AVATAR_ID_DESCRIPTION)
    avatar_layout: AvatarLayout | None = Field(None, description=AVATAR_LAYOUT_DOC)
    voice: Voice | None = Field(None, description=VOICE_DOC)
    voice_name: VoiceName | None = None
    voice_model: VoiceName | None = None
    ai: AiSettingsPatch | None = None
    knowledge: KnowledgeSettingsPatch | None = None


class ChatbotOut(ChatbotFields):
    model_config = ConfigDict(extra="ignore", strict=False)
    id: uuid.UUID
    name: str
    embed_id: str
    created_at: datetime
    updated_at: datetime


class EmbedSnippet(Out):
    embed_id: str
    snippet: str
    script_url: str


class WidgetConfig(Out):
    """What a widget needs to render, and nothing secret."""
    embed_id: str
    name: str
    greeting: str
    welcome_message: str
    suggested_questions: list[str]
    placement: Placement
    avatar_model_url: str | None
    animation_map: dict[str, str] = Field(default_factory=dict, description="behaviour -> clip name")
    avatar_layout: AvatarLayout = Field("stage", description=AVATAR_LAYOUT_DOC)
    voice: bool = Field(False, description="Whether replies can be heard (the widget's speech route).")


# --- pages -----------------------------------------------------------------------------------

class PageQuery(Query):
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]*$", max_length=200)


class ChatbotPage(Out):
    data: list[ChatbotOut]
    next_cursor: str | None


class ApiKeyPage(Out):
    data: list[ApiKeyOut]
    next_cursor: str | None


class TenantQuery(PageQuery):
    q: str | None = Field(None, max_length=200, description="Only tenants whose name contains this (any case)")
    order: Literal["oldest", "newest"] = Field("oldest", description="Oldest first (the default) or newest first")


class TenantPage(Out):
    data: list[TenantOut]
    next_cursor: str | None


class ConversationQuery(PageQuery):
    since: IsoDateTime | None = Field(None, alias="from", description="Conversations started at or after this time")
    until: IsoDateTime | None = Field(None, alias="to", description="Conversations started before this time")
    visitor_id: uuid.UUID | None = None
    handoff: bool | None = Field(None, description="Only conversations whose visitor asked for a person (true), "
                                                   "or only the others (false)")
    rating: Literal["up", "down"] | None = Field(None, description="Only conversations with a reply rated so")


class TenantConversationQuery(ConversationQuery):
    chatbot_id: uuid.UUID | None = Field(None, description="Only this chatbot's conversations")


class ConversationOut(Out):
    id: uuid.UUID
    chatbot_id: uuid.UUID
    visitor_id: uuid.UUID
    handoff_requested: bool
    messages: int
    created_at: datetime
    updated_at: datetime


class ConversationPage(Out):
    data: list[ConversationOut]
    next_cursor: str | None


class MessageOut(Out):
    id: uuid.UUID
    seq: int
    role: Literal["visitor", "assistant"]
    status: str
    text: str
    citations: list[dict] = []
    intent: str | None = None
    sentiment: float | None = None
    created_at: datetime


class ReplyUsage(Out):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False


class ReplyTimings(Out):
    ttft_ms: float | None = None
    total_ms: float = 0.0


class TranscriptMessage(MessageOut):
    """A message as the tenant sees it: a reply also says what it cost, how long it took, the
    avatar's animation and the visitor's rating."""
    usage: ReplyUsage | None = None
    timings: ReplyTimings | None = None
    animation: dict[str, Any] | None = Field(None, description="The avatar behaviour and clip the reply played")
    rating: Literal["up", "down"] | None = None
    rating_comment: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    completed_at: datetime | None = None


class Transcript(Out):
    conversation: ConversationOut
    messages: list[TranscriptMessage]


# --- the widget's public side ----------------------------------------------------------------

class ConversationIn(Strict):
    visitor_id: uuid.UUID | None = Field(
        None, description="A returning visitor's id, from an earlier conversation's response.")


class ConversationStarted(Out):
    conversation_id: uuid.UUID
    visitor_id: uuid.UUID
    visitor_token: str
    visitor_token_expires_in: int
    greeting: str


class VisitorToken(Out):
    visitor_token: str
    visitor_token_expires_in: int


class MessageIn(Strict):
    text: str = Field(min_length=1, max_length=4000, pattern=r"^[^\x00]*\S[^\x00]*$",
                      description="The visitor's message: at least one non-space character, at most 4000.")
    client_message_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$",
                                   description="Chosen by the client; a retry with the same id is not a new message.")


class MessageAccepted(Out):
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    status: Literal["accepted"] = "accepted"


class CitationShown(Out):
    title: str
    url: str | None = None
    snippet: str
    score: float


class VisitorMessage(MessageOut):
    """A message as its visitor sees it: no usage, cost, timings or internal error text."""
    citations: list[CitationShown] = []
    error_code: str | None = None
    error_message: str | None = Field(None, description="A plain sentence for the visitor")


class VisitorMessages(Out):
    data: list[VisitorMessage]


class Health(Out):
    status: str
    service: str
    instance: str
    checks: dict


class ReplyCancelled(Out):
    reply_id: uuid.UUID
    status: Literal["cancelling"] = "cancelling"


class HandoffRequested(Out):
    conversation_id: uuid.UUID
    status: Literal["requested"] = "requested"


class VisitorExport(Out):
    """Everything avatarchat stores about one visitor of one chatbot."""
    visitor: dict[str, Any] = Field(description="The visitor: id, chatbot, first and last seen")
    conversations: list[dict[str, Any]] = Field(
        description="Each conversation with its messages and replies, ratings and comments included")
    analytics_events: list[dict[str, Any]] = Field(
        description="Every event analytics recorded of these conversations, as it was recorded")
    exported_at: datetime
