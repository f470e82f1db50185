DROP INDEX jobs_claim_project;
