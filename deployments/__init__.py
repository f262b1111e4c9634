"""What a deployment needs besides prefect.yaml: the bootstrap of the work pool and blocks, the
Dockerfile of the worker/API image and the PostgreSQL init script of docker-compose.yml."""
