"""Where the test suite finds the services running on this machine (used for real)."""

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
S3_KEY = "testing"
S3_SECRET = "testing"
S3_REGION = "us-east-1"
