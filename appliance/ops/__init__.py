"""Running the appliance: install, supervise, status, doctor, call records, service logs."""
