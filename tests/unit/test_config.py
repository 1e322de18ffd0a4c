from pathlib import Path

import pytest
from pydantic import ValidationError

from prodcat.config import PLACEHOLDER, AirflowSettings, Settings, get_settings, iter_secrets


def make(**env) -> Settings:
    return Settings(_env_file=None, **env)


def test_nested_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("PRODCAT_POSTGRES__PORT", "6543")
    monkeypatch.setenv("PRODCAT_TRAINING__F1_THRESHOLD", "0.65")
    settings = Settings(_env_file=None)
    assert settings.postgres.port == 6543
    assert settings.training.f1_threshold == 0.65


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PRODCAT_S3__PORT", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("PRODCAT_S3__PORT=9999\nPRODCAT_S3__IMAGES_BUCKET=pics\n")
    settings = Settings(_env_file=env_file)
    assert settings.s3.port == 9999
    assert settings.s3.images_bucket == "pics"
    assert settings.s3.endpoint_url == "http://127.0.0.1:9999"


def test_repository_dotenv_is_a_working_dev_default():
    settings = Settings(_env_file=Path(__file__).parents[2] / ".env")
    assert settings.environment == "dev"
    assert settings.data.batch_size == 2000


def test_database_urls_use_psycopg2_and_each_component_role():
    settings = make()
    assert settings.postgres.url("mlflow").startswith("postgresql+psycopg2://mlflow:")
    assert settings.postgres.url("airflow").endswith("/airflow")
    assert settings.postgres.url().endswith(f":{settings.postgres.port}/prodcat")


def test_placeholder_secrets_allowed_in_dev():
    assert make(environment="dev").environment == "dev"


def test_the_code_defaults_to_production_so_placeholders_fail_closed(monkeypatch):
    monkeypatch.delenv("PRODCAT_ENVIRONMENT", raising=False)
    with pytest.raises(ValidationError, match="placeholder secrets"):
        Settings(_env_file=None)


@pytest.mark.parametrize("environment", ["dev", "production"])
def test_empty_secrets_are_refused_everywhere(environment):
    with pytest.raises(ValidationError, match=r"must not be empty: api\.admin_token"):
        make(environment=environment, api={"admin_token": " "})


def test_compose_only_secrets_are_checked_too():
    names = {name for name, _ in iter_secrets(make())}
    assert {"grafana.admin_password", "postgres.superuser_password"} <= names


def test_passwords_are_percent_encoded_in_database_urls():
    url = make(postgres={"app_password": "p@ss:w/rd%"}).postgres.url()
    assert "://prodcat:p%40ss%3Aw%2Frd%25@127.0.0.1:" in url


@pytest.mark.parametrize("environment", ["staging", "production", "test"])
def test_placeholder_secrets_refused_outside_dev(environment):
    with pytest.raises(ValidationError, match="placeholder secrets") as error:
        make(environment=environment)
    assert "postgres.app_password" in str(error.value)
    assert "airflow.fernet_key" in str(error.value)


def test_production_with_real_secrets_is_accepted(monkeypatch):
    secrets = iter_secrets(make())
    for name, _ in secrets:
        group, field = name.split(".")
        monkeypatch.setenv(f"PRODCAT_{group.upper()}__{field.upper()}", f"real-{name}")
    settings = make(environment="production")
    assert all(value != PLACEHOLDER for _, value in iter_secrets(settings))


def test_invalid_values_are_refused_with_the_field_named():
    with pytest.raises(ValidationError, match="batch_size"):
        make(data={"batch_size": 0})


def test_get_settings_is_cached():
    assert get_settings() is get_settings()


def test_the_redis_password_is_a_secret_refused_as_a_placeholder_outside_dev():
    assert "redis.password" in {name for name, _ in iter_secrets(make())}
    with pytest.raises(ValidationError, match=r"redis\.password"):
        make(environment="production")


def test_the_executor_is_local_by_default_and_celery_needs_a_worker():
    assert AirflowSettings().executor == "local"
    with pytest.raises(ValidationError, match="executor"):
        make(airflow={"executor": "kubernetes"})
    with pytest.raises(ValidationError, match="celery_workers"):
        make(airflow={"executor": "celery", "celery_workers": 0})
