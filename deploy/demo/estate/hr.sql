-- HR: the personnel system of the demo legacy estate, in the EMP/DEPT style.
--
-- Habits of an old system: uppercase names, the hire date as 'YYYYMMDD' text, the manager
-- as another employee's number, no foreign keys. Sales reps in the sales system's
-- crm_customer.rep_empno are EMPNO values of this table.
--
-- Portable DDL (standard SQL, double-quoted identifiers): runs as-is on SQLite and
-- PostgreSQL, and on MariaDB with sql_mode ANSI_QUOTES. The next line sets that mode when
-- the file is fed to the mariadb client; every other database reads it as a comment.
/*M! SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES') */;

CREATE TABLE "DEPT" (
    "DEPTNO"    INTEGER        NOT NULL PRIMARY KEY,
    "DNAME"     VARCHAR(14)    NOT NULL,
    "LOC"       VARCHAR(13)    NOT NULL
);

-- HIREDATE: 'YYYYMMDD'. MGR: the manager's EMPNO, null for the head of the company.
CREATE TABLE "EMP" (
    "EMPNO"     INTEGER        NOT NULL PRIMARY KEY,
    "ENAME"     VARCHAR(30)    NOT NULL,
    "JOB"       VARCHAR(12)    NOT NULL,
    "MGR"       INTEGER,
    "HIREDATE"  CHAR(8)        NOT NULL,
    "SAL"       DECIMAL(9,2)   NOT NULL,
    "DEPTNO"    INTEGER        NOT NULL,
    "EMAIL"     VARCHAR(80)
);
CREATE INDEX "EMP_DEPTNO" ON "EMP" ("DEPTNO");
