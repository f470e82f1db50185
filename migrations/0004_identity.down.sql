DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE project_members;
DROP TABLE users;
