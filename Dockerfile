# A non-root image that serves Telegram, with its SQLite file on a volume.
#   docker build -t helpbot .
#   docker run -e TELEGRAM_BOT_TOKEN=... -v helpbot-data:/data helpbot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BOT_DB_PATH=/data/bot.sqlite3 \
    BOT_FLOWS_DIR=/app/flows

RUN groupadd --system bot && useradd --system --gid bot --home-dir /app --shell /usr/sbin/nologin bot

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install .
COPY flows ./flows
COPY locales ./locales

RUN mkdir -p /data && chown bot:bot /data
VOLUME ["/data"]
USER bot

# Refuse to start on broken flows rather than serve them.
RUN python -m bot validate
CMD ["python", "-m", "bot", "run"]
