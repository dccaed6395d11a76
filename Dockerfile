# One image for web, worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 untrace
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=untrace:untrace . .
# collectstatic needs settings, not secrets: throwaway values for the build step only.
RUN DEBUG=false UNTRACE_SECRET_KEY=build-only UNTRACE_ENCRYPTION_KEYS=YnVpbGQtb25seS1rZXktMDAwMDAwMDAwMDAwMDAwMDA= \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 python manage.py collectstatic --noinput \
    && mkdir -p /app/var && chown -R untrace:untrace /app/var /app/staticfiles

USER untrace
EXPOSE 8000
CMD ["sh", "-c", "uvicorn untrace.asgi:application --host 0.0.0.0 --port ${PORT:-8000} --workers ${WEB_CONCURRENCY:-2} --proxy-headers"]
