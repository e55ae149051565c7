# Writes the SQL workload of test_sqlite.sh: deterministic pseudo-random
# rows (a Park-Miller generator, exact in awk's doubles), loaded in
# transactions, then indexes, joins, GROUP BY, updates, deletes, VACUUM and
# an integrity check. Every SELECT orders its rows, so the output depends
# only on the data.
function rnd(n) { seed = (seed * 48271) % 2147483647; return seed % n }
# lo..hi random words, quoted for an SQL string literal.
function words(lo, hi,    k, n, s) {
    n = lo + rnd(hi - lo + 1)
    s = vocab[rnd(nvocab)]
    for (k = 1; k < n; k++)
        s = s " " vocab[rnd(nvocab)]
    gsub(/'/, "''", s)
    return s
}
BEGIN {
    seed = 20240611
    nvocab = split("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi " \
        "omicron pi rho sigma tau upsilon phi chi psi omega arena pool block heap free list " \
        "size class lock fork thread page map unmap carve ring spare usable serial owner " \
        "it's quote's", vocab, " ")
    for (i = 1; i <= nvocab; i++)
        vocab[i - 1] = vocab[i]
    nauthors = 2000; nposts = 100000; ntags = 150000
    split("fr de jp br in us ng eg ar nz", countries, " ")

    print "PRAGMA foreign_keys = ON;"
    print "PRAGMA synchronous = OFF;"
    print "CREATE TABLE author(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);"
    print "CREATE TABLE post(id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL REFERENCES author(id),"
    print "                  title TEXT NOT NULL, body TEXT NOT NULL, score INTEGER NOT NULL);"
    print "CREATE TABLE tag(post_id INTEGER NOT NULL REFERENCES post(id) ON DELETE CASCADE,"
    print "                 tag TEXT NOT NULL);"

    print "BEGIN;"
    for (i = 1; i <= nauthors; i++)
        printf "INSERT INTO author VALUES(%d, '%s', '%s');\n", i, words(1, 3), countries[1 + rnd(10)]
    print "COMMIT;"

    # One statement per row, 5,000 rows per transaction.
    for (i = 1; i <= nposts; i++) {
        if (i % 5000 == 1)
            print "BEGIN;"
        printf "INSERT INTO post VALUES(%d, %d, '%s', '%s', %d);\n", i, 1 + rnd(nauthors), words(1, 6), words(3, 40), rnd(1000)
        if (i % 5000 == 0)
            print "COMMIT;"
    }

    # Fifty rows per statement.
    print "BEGIN;"
    for (i = 0; i < ntags; i++) {
        printf "%s(%d, '%s')", (i % 50 == 0 ? "INSERT INTO tag VALUES" : ", "), 1 + rnd(nposts), vocab[rnd(30)]
        if (i % 50 == 49)
            print ";"
    }
    print "COMMIT;"

    print "CREATE INDEX post_author ON post(author_id);"
    print "CREATE INDEX post_score ON post(score, id);"
    print "CREATE INDEX tag_tag ON tag(tag, post_id);"
    print "CREATE INDEX tag_post ON tag(post_id);"
    print "ANALYZE;"

    print "SELECT 'rows', (SELECT count(*) FROM author), count(*), sum(length(body)), sum(score) FROM post;"
    print "SELECT a.country, count(*), sum(p.score), printf('%.3f', avg(length(p.body)))"
    print "  FROM post p JOIN author a ON a.id = p.author_id GROUP BY a.country ORDER BY a.country;"
    print "SELECT t.tag, count(*), count(DISTINCT p.author_id), max(p.score)"
    print "  FROM tag t JOIN post p ON p.id = t.post_id GROUP BY t.tag ORDER BY 2 DESC, 1 LIMIT 15;"
    print "SELECT a.name, count(p.id) AS n, group_concat(p.id, ',')"
    print "  FROM author a LEFT JOIN post p ON p.author_id = a.id"
    print "  GROUP BY a.id ORDER BY n DESC, a.id LIMIT 5;"
    print "SELECT id, title, score FROM post WHERE body LIKE '%heap free list%' ORDER BY score DESC, id LIMIT 10;"
    print "SELECT substr(body, 1, 30), length(body) FROM post ORDER BY body, id LIMIT 10;"
    print "SELECT score / 100 AS bucket, count(*), min(id), max(id) FROM post GROUP BY bucket ORDER BY bucket;"

    print "BEGIN;"
    print "UPDATE post SET body = body || ' (edited)', score = score + 1 WHERE id % 7 = 0;"
    print "UPDATE post SET title = upper(title) WHERE score BETWEEN 400 AND 450;"
    print "UPDATE author SET name = replace(name, 'a', 'A') WHERE country IN ('fr', 'nz');"
    print "DELETE FROM post WHERE score < 100;"
    print "DELETE FROM tag WHERE tag IN ('omega', 'psi') AND post_id % 2 = 0;"
    print "COMMIT;"
    print "INSERT INTO post(author_id, title, body, score)"
    print "  SELECT author_id, title || ' again', substr(body, 1, 100), score FROM post WHERE id % 11 = 0;"
    print "DELETE FROM author WHERE id NOT IN (SELECT author_id FROM post);"

    print "SELECT 'rows', (SELECT count(*) FROM author), count(*), sum(length(body)), sum(score) FROM post;"
    print "SELECT count(*), count(DISTINCT post_id) FROM tag;"
    print "SELECT a.country, count(*), sum(p.score)"
    print "  FROM post p JOIN author a ON a.id = p.author_id GROUP BY a.country ORDER BY a.country;"
    print "SELECT id, title FROM post WHERE title GLOB '*[A-Z]*' ORDER BY id LIMIT 5;"
    print "VACUUM;"
    print "SELECT 'after vacuum', count(*), sum(score), total(length(title)) FROM post;"
    print "SELECT 'integrity_check: ' || integrity_check FROM pragma_integrity_check;"
}
