from pydantic import Field

from common.settings import settings_for


class Settings(settings_for("conversation")):
    history_messages: int = Field(20, validation_alias="HISTORY_MESSAGES")
    # a reply still pending after this long is failed, so no visitor waits forever
    reply_deadline_s: float = Field(180.0, validation_alias="REPLY_DEADLINE_SECONDS")
