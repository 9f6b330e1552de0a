from common.web import run
from services.analytics.app import create_app
from services.analytics.settings import Settings

settings = Settings()
run(lambda: create_app(settings), settings)
