FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ehr ehr
COPY claims claims
COPY interop interop
COPY profiles profiles
COPY bench bench
RUN pip install --no-cache-dir .
ENV SIJILL_DATABASE_URL=sqlite+aiosqlite:////data/sijill.db
EXPOSE 8000
CMD ["sh", "-c", "sijill db upgrade && sijill serve --host 0.0.0.0 --port 8000 --workers 2"]
