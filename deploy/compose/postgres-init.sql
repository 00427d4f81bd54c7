-- Databases of the compose stack: Airflow metadata, MLflow tracking/registry, the Ativo platform DB.
CREATE USER airflow WITH PASSWORD 'airflow';
CREATE DATABASE airflow OWNER airflow;
CREATE USER mlflow WITH PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;
CREATE USER ativo WITH PASSWORD 'ativo';
CREATE DATABASE ativo OWNER ativo;
