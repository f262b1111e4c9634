"""The stack's credentials file is read as a .env file (python-dotenv), secrets taken literally."""

from __future__ import annotations

from flavor_ml.stack.credentials import read_env_file


def test_a_credentials_file_reads_like_any_env_file_and_keeps_dollar_signs(tmp_path):
    path = tmp_path / "credentials.env"
    path.write_text(
        "# generated\n\nexport AWS_ACCESS_KEY_ID=FLAVORKEY\n"
        "AWS_SECRET_ACCESS_KEY='quoted secret'\n"
        "MLFLOW_TRACKING_PASSWORD=pa$$word${HOME}  # a comment\n"
        "NOT_A_PAIR\n"
    )

    assert read_env_file(path) == {
        "AWS_ACCESS_KEY_ID": "FLAVORKEY",
        "AWS_SECRET_ACCESS_KEY": "quoted secret",
        "MLFLOW_TRACKING_PASSWORD": "pa$$word${HOME}",
    }
