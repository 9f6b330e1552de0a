from common.web import run
from services.gateway.app import create_app
from services.gateway.settings import Settings

settings = Settings()
run(lambda: create_app(settings), settings)
