DROP TABLE jobs;
DROP TABLE queues;
DROP TABLE api_keys;
DROP TABLE projects;
