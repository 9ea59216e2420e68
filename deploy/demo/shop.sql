-- The demo's legacy shop: a small POS database with the habits of an old system
-- (DECIMAL money, dates as text, codes instead of names). Created once by `unsilo demo`.
CREATE TABLE IF NOT EXISTS stores (
    store_code  CHAR(4) PRIMARY KEY,
    city        VARCHAR(40) NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    sku         VARCHAR(12) PRIMARY KEY,
    label       VARCHAR(60) NOT NULL,
    unit_price  DECIMAL(10,2) NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    cust_code   VARCHAR(8) PRIMARY KEY,
    name        VARCHAR(60) NOT NULL,
    email       VARCHAR(80),
    since       DATE
);
CREATE TABLE IF NOT EXISTS sales (
    ticket_no   INTEGER PRIMARY KEY,
    store_code  CHAR(4) NOT NULL,
    sku         VARCHAR(12) NOT NULL,
    cust_code   VARCHAR(8),
    qty         INTEGER NOT NULL,
    amount      DECIMAL(12,2) NOT NULL,
    sold_at     TIMESTAMP NOT NULL
);
