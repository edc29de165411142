-- One database and one user per service: a service can reach only its own data.
CREATE USER catalog WITH PASSWORD 'catalog';  CREATE DATABASE catalog OWNER catalog;
CREATE USER shop    WITH PASSWORD 'shop';     CREATE DATABASE shop    OWNER shop;
CREATE USER share   WITH PASSWORD 'share';    CREATE DATABASE share   OWNER share;
CREATE USER orders  WITH PASSWORD 'orders';   CREATE DATABASE orders  OWNER orders;
CREATE USER payouts WITH PASSWORD 'payouts';  CREATE DATABASE payouts OWNER payouts;
CREATE USER identity WITH PASSWORD 'identity'; CREATE DATABASE identity OWNER identity;
CREATE USER messages WITH PASSWORD 'messages'; CREATE DATABASE messages OWNER messages;
