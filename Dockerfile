# Production image: the API, the claims worker and the CLI, as a non-root user.  The locked
# dependencies are their own layer (rebuilt only when requirements.lock changes); bench/ and the
# demo generator stay out.  `--target demo` adds them (docker-compose.demo.yml).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# WeasyPrint's text engine (printable letters and prescriptions as PDF): Pango with HarfBuzz and
# its subsetter (fonts embedded in a few ms), and a font with Arabic glyphs.
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
RUN useradd --system --uid 10001 --home-dir /app sijill && mkdir -p /data && chown sijill /data

FROM base AS production
COPY pyproject.toml README.md ./
COPY ehr ehr
COPY claims claims
COPY interop interop
COPY profiles profiles
# The demo population generator is a development tool (it ships with the demo target only).
RUN rm -rf ehr/demo ehr/demo_load.py && pip install --no-deps .
ENV SIJILL_DATABASE_URL=sqlite+aiosqlite:////data/sijill.db SIJILL_DATA_DIR=/data
USER sijill
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
# One server process per container: scale containers, not workers (docs/operations.md).
CMD ["sijill", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "1"]

# The demo adds back the population generator and the benchmarks.
FROM production AS demo
USER root
COPY ehr/demo ehr/demo
COPY ehr/demo_load.py ehr/demo_load.py
COPY bench bench
RUN pip install --no-deps .
USER sijill
