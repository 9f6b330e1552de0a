import uuid

import pytest

from common.events import ChatbotSnapshot




@pytest.fixture
def bot():
    return ChatbotSnapshot(chatbot_id=uuid.uuid4(), name="Ava", system_prompt="You help customers of Acme Bikes.",
                           tone="warm", greeting="Hi, I'm Ava from Acme Bikes!",
                           fallback_answer="Sorry, I couldn't find that in our documents.")
