CREATE DATABASE lakeferry_catalog OWNER lakeferry;
