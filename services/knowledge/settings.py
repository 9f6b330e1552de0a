from common.settings import settings_for


class Settings(settings_for("knowledge")):
    pass
