from pydantic import Field

from common.settings import settings_for


class Settings(settings_for("analytics")):
    # months of partitions created ahead of time (besides the current one)
    partitions_ahead: int = Field(3, validation_alias="ANALYTICS_PARTITIONS_AHEAD")
    # raw events, reply and conversation facts are kept this long unless the tenant chose less
    # (or more, up to max_retention_days)
    retention_days: int = Field(395, validation_alias="ANALYTICS_RETENTION_DAYS")
    # whole monthly partitions older than this are dropped (the cheap part of retention)
    max_retention_days: int = Field(3650, validation_alias="ANALYTICS_MAX_RETENTION_DAYS")
    maintenance_interval_s: float = Field(3600.0, validation_alias="ANALYTICS_MAINTENANCE_SECONDS")
