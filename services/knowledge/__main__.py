from common.web import run
from services.knowledge.app import create_app
from services.knowledge.settings import Settings

settings = Settings()
run(lambda: create_app(settings), settings)
