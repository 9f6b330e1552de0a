from common.web import run
from services.conversation.app import create_app
from services.conversation.settings import Settings

settings = Settings()
run(lambda: create_app(settings), settings)
