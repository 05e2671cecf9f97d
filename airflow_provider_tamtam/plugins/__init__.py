"""The provider's Airflow UI plugin: the "Tamtam credits" page served by the api-server."""
