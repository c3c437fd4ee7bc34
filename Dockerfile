# The application image: worker, API and migrations, from the same pins as the tests.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --uid 10001 --home /app advocacy \
    && mkdir -p /app/var/outbox \
    && chown -R advocacy /app/var
USER advocacy

# docker-compose.yml sets the command per service (worker, API, migrations).
CMD ["python", "worker.py"]
