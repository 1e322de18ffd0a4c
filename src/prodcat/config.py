"""Typed settings for every endpoint, credential, port, path, bucket, threshold and schedule.

Values come from ``PRODCAT_*`` environment variables, then ``.env``, then the defaults below.
Nested groups use ``__``: ``PRODCAT_POSTGRES__PORT=5433``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER = "changethis"
# A valid Fernet key so Airflow starts in dev; refused like any placeholder elsewhere.
DEV_FERNET_KEY = "bm90LWEtc2VjcmV0LWRldi1vbmx5LWZlcm5ldC1rZXk="


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5432
    superuser: str = "postgres"
    # Natively the superuser logs in over a 0700 socket folder; compose's postgres image needs it.
    superuser_password: SecretStr = SecretStr(PLACEHOLDER)
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    app_db: str = "prodcat"
    app_user: str = "prodcat"
    app_password: SecretStr = SecretStr(PLACEHOLDER)
    airflow_db: str = "airflow"
    airflow_user: str = "airflow"
    airflow_password: SecretStr = SecretStr(PLACEHOLDER)
    mlflow_db: str = "mlflow"
    mlflow_user: str = "mlflow"
    mlflow_password: SecretStr = SecretStr(PLACEHOLDER)

    def url(self, role: Literal["app", "airflow", "mlflow"] = "app") -> str:
        """SQLAlchemy URL (psycopg2 driver) for one of the three databases."""
        db, user = getattr(self, f"{role}_db"), getattr(self, f"{role}_user")
        password = quote(getattr(self, f"{role}_password").get_secret_value(), safe="")
        return (
            f"postgresql+psycopg2://{quote(user, safe='')}:{password}@{self.host}:{self.port}/{db}"
        )


class S3Settings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8333
    secure: bool = False
    region: str = "us-east-1"
    access_key: str = "prodcat"
    secret_key: SecretStr = SecretStr(PLACEHOLDER)
    # The API's read-only identity: it may read objects, never write or delete them.
    reader_access_key: str = "prodcat-reader"
    reader_secret_key: SecretStr = SecretStr(PLACEHOLDER)
    images_bucket: str = "prodcat-images"
    mlflow_bucket: str = "prodcat-mlflow"
    reports_bucket: str = "prodcat-reports"
    # Internal ports of the native SeaweedFS server; compose uses MinIO instead.
    master_port: int = 9333
    volume_port: int = 8081
    filer_port: int = 8888
    admin_port: int = 23646

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def as_reader(self) -> S3Settings:
        """The same endpoint, signed in as the read-only identity."""
        return self.model_copy(
            update={"access_key": self.reader_access_key, "secret_key": self.reader_secret_key}
        )

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


class MlflowSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    # MLflow's basic-auth app: every client (tasks, API, CLI) signs in as this user. MLflow
    # creates it on first start and wants a password of at least 12 characters.
    admin_user: str = "admin"
    admin_password: SecretStr = SecretStr(f"{PLACEHOLDER}-mlflow")  # a placeholder too
    flask_secret_key: SecretStr = SecretStr(PLACEHOLDER)  # CSRF protection of its forms
    # The API only reads the registry: it signs in as this user, who may read every model
    # (default_permission = READ) but write none. `stack up` and compose's mlflow-init make it.
    reader_user: str = "prodcat-reader"
    reader_password: SecretStr = SecretStr(f"{PLACEHOLDER}-mlflow-reader")
    sign_in_as: Literal["admin", "reader"] = "admin"
    experiment: str = "prodcat"
    model_name: str = "prodcat-classifier"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"


class AirflowSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    admin_user: str = "admin"
    admin_password: SecretStr = SecretStr(PLACEHOLDER)
    jwt_secret: SecretStr = SecretStr(PLACEHOLDER)
    api_secret_key: SecretStr = SecretStr(PLACEHOLDER)
    fernet_key: SecretStr = SecretStr(DEV_FERNET_KEY)
    parallelism: int = 4
    dags_paused_at_creation: bool = False
    dags_folder: Path = Path("dags")
    # "celery": the scheduler queues tasks in Redis and `celery_workers` supervised
    # `airflow celery worker` processes run them; "local": the scheduler runs them itself.
    executor: Literal["local", "celery"] = "local"
    celery_workers: int = Field(default=1, ge=1)
    # Tasks one worker runs at once: one per core of the 2-core reference machine.
    celery_worker_concurrency: int = Field(default=2, ge=1)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RedisSettings(BaseModel):
    """The Celery executor's broker (only started when airflow.executor is "celery")."""

    host: str = "127.0.0.1"
    port: int = 6379
    password: SecretStr = SecretStr(PLACEHOLDER)
    db: int = Field(default=0, ge=0)

    @property
    def url(self) -> str:
        """redis:// URL with the password, as Celery's broker_url takes it."""
        password = quote(self.password.get_secret_value(), safe="")
        return f"redis://:{password}@{self.host}:{self.port}/{self.db}"


class PrometheusSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 9090

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=2, ge=1)  # one per core: benchmarks/api_load.py measured both
    admin_token: SecretStr = SecretStr(PLACEHOLDER)
    max_batch_items: int = Field(default=1000, gt=0)
    reload_interval_seconds: float = Field(default=30, gt=0)
    model_copies: int = Field(default=3, ge=1)  # local copies of recent champions kept on disk
    max_top_k: int = Field(default=10, gt=0)
    # Cost budget of one request, in characters the model reads (after cleaning and Unicode
    # normalisation, the title repeated as the model repeats it). benchmarks/request_cost.py
    # measured at most 460 bytes and 2.7 us per character of model work on the winner
    # champion; through the API (JSON, validation, answer) on a busy 2-core machine, 250,000
    # characters took 850 ms, with peaks over 1 s. 200,000 characters keeps the worst request
    # near 100 MB and 0.7 s, within 150 MB and 1 s. Real titles make about 145 characters each
    # (a 1,000-item batch fits). Titles and descriptions are capped by data.max_*_chars.
    max_request_chars: int = Field(default=200_000, gt=0)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, gt=0)  # refused before parsing
    # Back-pressure, per worker: beyond these, 503 with Retry-After rather than a backlog.
    queue_size: int = Field(default=1024, gt=0)  # single predictions waiting for the model
    batch_queue_size: int = Field(default=4, gt=0)  # batches waiting for the model
    predict_timeout_seconds: float = Field(default=10, gt=0)  # waiting for a model call
    limit_concurrency: int = Field(default=256, gt=0)  # connections and requests (uvicorn)
    # Prediction log (for drift monitoring): a bounded queue written to PostgreSQL in batches.
    log_predictions: bool = True
    log_raw_text: bool = True
    log_queue_size: int = Field(default=10_000, gt=0)
    log_batch_size: int = Field(default=500, gt=0)
    log_flush_seconds: float = Field(default=1.0, gt=0)
    log_retention_days: int = Field(default=30, gt=0)
    # The share of live inputs a `challenger` version (when there is one) scores in shadow,
    # off the request path, in a queue of at most shadow_queue_size inputs per worker.
    shadow_sample: float = Field(default=0.1, ge=0, le=1)
    shadow_queue_size: int = Field(default=2000, gt=0)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class GrafanaSettings(BaseModel):
    """Compose only (there is no native Grafana); checked here like every other secret."""

    admin_user: str = "admin"
    admin_password: SecretStr = SecretStr(PLACEHOLDER)


class StatsdSettings(BaseModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9125
    prefix: str = "prodcat"


class DataSettings(BaseModel):
    raw_dir: Path = Path("../shared/data/rakuten")
    # A bundled dataset description (src/prodcat/data/datasets/<name>.yaml) or a YAML file path.
    dataset: str = "rakuten-designations"
    batch_size: int = Field(default=2000, gt=0)
    # Quick start: each prepare_data run loads every batch left instead of one.
    catch_up: bool = False
    eval_size: int = Field(default=2000, ge=0)  # 0: no evaluation set
    seed: int = 42
    max_title_chars: int = Field(default=1000, gt=0)
    max_description_chars: int = Field(default=10_000, gt=0)


class TrainingSettings(BaseModel):
    profile: Literal["fast", "full", "winner"] = "full"
    f1_threshold: float = Field(default=0.7, ge=0, le=1)
    backlog_threshold: int = Field(default=10_000, ge=0)
    min_delta: float = Field(default=0.002, ge=0)
    f1_floor: float = Field(default=0.5, ge=0, le=1)
    # The gate refuses a challenger whose expected calibration error (15 bins, evaluation
    # set) exceeds this: its confidence would mislead the review queue and the API's users.
    # Temperature-scaled LinearSVC ensembles measured 0.026-0.034 (4k to 20k training rows).
    max_ece: float = Field(default=0.05, ge=0, le=1)
    # ml_pipeline skips (with the reason logged) until this many labelled rows are in.
    min_rows: int = Field(default=4000, ge=2)
    # The search runs on a seeded stratified sample of at most this many rows; the winner is
    # then refit on every row, in chunks past this size (training/stream.py), so memory stays
    # flat whatever the catalogue's size.
    search_rows: int = Field(default=50_000, ge=1000)


class DriftSettings(BaseModel):
    # Rows sampled from the champion's training snapshot (text descriptors, labels).
    reference_rows: int = Field(default=10_000, gt=0)
    # At most this many rows of a window are compared (a seeded sample of newer ones).
    current_rows: int = Field(default=10_000, gt=0)
    # Below this, a window is "insufficient data": no decision, no alarm. At 1,000 rows two
    # samples of the same data differ by at most ~0.07 on any column (threshold 0.1).
    min_rows: int = Field(default=1000, gt=0)
    share_threshold: float = Field(default=0.5, gt=0, le=1)
    # Drift in any of these decides on its own (when the window has the column).
    key_columns: list[str] = ["label", "predicted_category", "confidence"]
    cooldown_hours: float = Field(default=24, ge=0)
    seed: int = 42


class ReviewSettings(BaseModel):
    # Answers under this confidence, from batch_predict or the API, go to the review queue
    # (0 turns it off).
    confidence_threshold: float = Field(default=0.5, ge=0, le=1)
    # Bearer token of GET /review and POST /feedback (reviewers, not operators).
    token: SecretStr = SecretStr(PLACEHOLDER)


class BatchPredictSettings(BaseModel):
    # Listings read, scored and written per step: memory stays flat whatever the backlog, and
    # small chunks keep both workers busy (benchmarks/batch_predict.py: 7,000/s at 5,000 rows
    # against 4,600/s at 20,000).
    chunk_rows: int = Field(default=5_000, gt=0)
    # Processes scoring chunks side by side (forked, sharing the loaded model): one per core.
    workers: int = Field(default=2, ge=1)


# The Airflow asset prepare_data updates when it loads new rows; ml_pipeline runs on it.
PRODUCTS_ASSET = "prodcat://products"


class ScheduleSettings(BaseModel):
    prepare_data: str = "*/15 * * * *"
    ml_pipeline: str = "@hourly"
    drift_detection: str = "0 */2 * * *"
    batch_predict: str = "0 2 * * *"  # nightly


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRODCAT_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Placeholder secrets are refused unless this is "dev", which only .env sets.
    environment: Literal["dev", "test", "staging", "production"] = "production"
    log_level: str = "INFO"
    state_dir: Path = Path(".state")
    postgres: PostgresSettings = PostgresSettings()
    s3: S3Settings = S3Settings()
    mlflow: MlflowSettings = MlflowSettings()
    airflow: AirflowSettings = AirflowSettings()
    redis: RedisSettings = RedisSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    api: ApiSettings = ApiSettings()
    statsd: StatsdSettings = StatsdSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    data: DataSettings = DataSettings()
    training: TrainingSettings = TrainingSettings()
    drift: DriftSettings = DriftSettings()
    review: ReviewSettings = ReviewSettings()
    batch_predict: BatchPredictSettings = BatchPredictSettings()
    schedules: ScheduleSettings = ScheduleSettings()

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        secrets = iter_secrets(self)
        empty = [name for name, value in secrets if not value.strip()]
        if empty:
            raise ValueError(f"secrets must not be empty: {', '.join(empty)}")
        bad = [name for name, v in secrets if v.startswith(PLACEHOLDER) or v == DEV_FERNET_KEY]
        if bad and self.environment != "dev":
            raise ValueError(
                f"placeholder secrets are only allowed when PRODCAT_ENVIRONMENT=dev; "
                f"set real values for: {', '.join(bad)}"
            )
        for name in ("admin_password", "reader_password"):
            if len(getattr(self.mlflow, name).get_secret_value()) < 12:
                raise ValueError(f"mlflow.{name} needs at least 12 characters (MLflow's rule)")
        return self


def iter_secrets(settings: Settings) -> list[tuple[str, str]]:
    """Every secret setting as (dotted name, plain value)."""
    found = []
    for group_name in type(settings).model_fields:
        group = getattr(settings, group_name)
        if not isinstance(group, BaseModel):
            continue
        for field_name in type(group).model_fields:
            value = getattr(group, field_name)
            if isinstance(value, SecretStr):
                found.append((f"{group_name}.{field_name}", value.get_secret_value()))
    return found


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
