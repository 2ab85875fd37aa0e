import pytest
from pydantic import ValidationError

from core.search_attributes import dev_server_args
from core.settings import Settings


@pytest.mark.parametrize("given, expected", [
    ("postgres://u:p@db:5432/crm", "postgresql+psycopg://u:p@db:5432/crm"),
    ("postgresql://u@127.0.0.1/test", "postgresql+psycopg://u@127.0.0.1/test"),
    ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
])
def test_database_urls_are_rewritten_for_psycopg3(given, expected):
    assert Settings(database_url=given).database_url == expected


def test_unsupported_database_scheme_is_a_clear_error():
    with pytest.raises(ValidationError, match="unsupported database URL scheme in 'mysql'"):
        Settings(database_url="mysql://root@localhost/db")


def test_temporal_address_must_be_host_port():
    with pytest.raises(ValidationError, match="host:port"):
        Settings(temporal_address="http://localhost:7233")
    assert Settings(temporal_address="temporal:7233").effective_temporal_address == "temporal:7233"


def test_the_timestamp_authority_is_an_http_url():
    with pytest.raises(ValidationError, match="http:// or https://"):
        Settings(signing_timestamp_url="tsa.example.com")
    assert Settings(signing_timestamp_url=" https://tsa.example.com/tsr ").signing_timestamp_url == \
        "https://tsa.example.com/tsr"
    assert Settings(signing_timestamp_url="").signing_timestamp_url is None


def test_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("DEALFLOW_DATABASE_URL", raising=False)
    settings = Settings(home=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve()}/crm.db"
    assert settings.effective_temporal_address == "127.0.0.1:7233"


def test_environment_prefix(monkeypatch):
    monkeypatch.setenv("DEALFLOW_DATABASE_URL", "postgres://x@y/z")
    monkeypatch.setenv("DEALFLOW_TEMPORAL_TASK_QUEUE", "q1")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://x@y/z"
    assert settings.temporal_task_queue == "q1"


def test_dev_server_registers_every_search_attribute():
    args = dev_server_args()
    pairs = dict(a.split("=") for a in args[1::2])
    assert pairs == {"TenantId": "Keyword", "LeadId": "Keyword", "OpportunityId": "Keyword",
                     "LeadStatus": "Keyword", "DealStage": "Keyword", "LeadScore": "Double",
                     "DefinitionKey": "Keyword", "InvestorId": "Keyword", "DocumentId": "Keyword"}
    assert args[0::2] == ["--search-attribute"] * 9


def test_an_accreditation_window_override_keeps_the_other_methods():
    import pytest

    from core.settings import Settings

    windows = Settings(accreditation_valid_days={"third_party_letter": 60}).accreditation_valid_days
    assert windows["third_party_letter"] == 60 and windows["income"] == 90 and windows["self_certification"] == 365
    with pytest.raises(ValueError, match="unknown accreditation method"):
        Settings(accreditation_valid_days={"astrology": 5})
