from pydantic import Field

from common.settings import settings_for


class Settings(settings_for("conversation")):
    history_messages: int = Field(20, validation_alias="HISTORY_MESSAGES")
    # how long a message whose predecessor in its conversation has not arrived yet is held
    # back (the order the gateway accepted them in); after that it goes on, and the gap is logged
    order_hold_s: float = Field(10.0, validation_alias="ORDER_HOLD_SECONDS")
