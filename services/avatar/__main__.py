from common.web import run
from services.avatar.app import create_app
from services.avatar.settings import Settings

settings = Settings()
run(lambda: create_app(settings), settings)
