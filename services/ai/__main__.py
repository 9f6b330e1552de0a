from common.web import run
from services.ai.app import create_app
from services.ai.settings import Settings

settings = Settings()
run(lambda: create_app(settings), settings)
