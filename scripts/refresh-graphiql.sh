#!/usr/bin/env bash
# Re-downloads the scripts and styles the GraphiQL page is built from (api/assets/graphiql/),
# at the versions pinned below, from the npm registry. The server compiles them in and serves
# them itself, so GraphiQL works with no network.
#
#   scripts/refresh-graphiql.sh
#
# Env:  NPM_REGISTRY (default https://registry.npmjs.org).
# Needs curl, tar, sha512sum, sha256sum, xxd and base64. Every tarball is checked against the
# sha512 the registry publishes for it before anything is written.
#
# To move to another version: change it here, run this script, then rename the matching file
# in `api/src/graphiql.rs` (its `include_bytes!` fails the build until you do). File names
# carry the version because the server lets browsers cache them for a year.
set -euo pipefail

REACT_VERSION=18.3.1
REACT_DOM_VERSION=18.3.1
# The last 3.x release, and the first whose graphiql.min.js is really minified (3.0 to 3.8
# ship webpack's development build under that name, 3.4 MB).
GRAPHIQL_VERSION=3.9.0

REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
cd "$(dirname "$0")/.."
DEST=api/assets/graphiql
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# unpack NAME VERSION: downloads NAME@VERSION, checks it, unpacks it to $WORK/NAME/package.
unpack() {
  local name="$1" version="$2" integrity want got
  integrity="$(curl -fsSL "$REGISTRY/$name/$version" |
    grep -o '"integrity": *"sha512-[^"]*"' | head -n 1 | cut -d'"' -f4)"
  if [ -z "$integrity" ]; then
    echo "$name@$version: the registry gives no sha512 integrity" >&2
    exit 1
  fi
  curl -fsSL "$REGISTRY/$name/-/$name-$version.tgz" -o "$WORK/$name.tgz"
  want="${integrity#sha512-}"
  got="$(sha512sum "$WORK/$name.tgz" | cut -d' ' -f1 | xxd -r -p | base64 -w0)"
  if [ "$want" != "$got" ]; then
    echo "$name@$version: the tarball does not match the registry's sha512" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name"
  tar -xzf "$WORK/$name.tgz" -C "$WORK/$name"
  echo "$name@$version: $REGISTRY/$name/-/$name-$version.tgz ($integrity)"
}

unpack react "$REACT_VERSION"
unpack react-dom "$REACT_DOM_VERSION"
unpack graphiql "$GRAPHIQL_VERSION"

# Files of other versions go: only the pinned ones stay.
mkdir -p "$DEST/LICENSES"
rm -f "$DEST"/react-*.js "$DEST"/graphiql-*.js "$DEST"/graphiql-*.css
cp "$WORK/react/package/umd/react.production.min.js" \
  "$DEST/react-$REACT_VERSION.production.min.js"
cp "$WORK/react-dom/package/umd/react-dom.production.min.js" \
  "$DEST/react-dom-$REACT_DOM_VERSION.production.min.js"
# The source map is not vendored: drop the comment that would make developer tools ask for it.
sed '/^\/\/# sourceMappingURL=/d' "$WORK/graphiql/package/graphiql.min.js" \
  >"$DEST/graphiql-$GRAPHIQL_VERSION.min.js"
cp "$WORK/graphiql/package/graphiql.min.css" "$DEST/graphiql-$GRAPHIQL_VERSION.min.css"
cp "$WORK/react/package/LICENSE" "$DEST/LICENSES/react.LICENSE"
cp "$WORK/react-dom/package/LICENSE" "$DEST/LICENSES/react-dom.LICENSE"
cp "$WORK/graphiql/package/LICENSE" "$DEST/LICENSES/graphiql.LICENSE"

sums="$(cd "$DEST" && sha256sum -- *.js *.css)"
cat >"$DEST/README.md" <<EOF
# Vendored GraphiQL

The GraphiQL page at \`/\` and \`/graphiql\` is built from these files, compiled into the
binary by \`api/src/graphiql.rs\` and served under \`/graphiql/assets/<file>\`, so it needs
no network. Written by \`scripts/refresh-graphiql.sh\`; do not edit by hand.

| file | package | from |
|---|---|---|
| \`react-$REACT_VERSION.production.min.js\` | react $REACT_VERSION (MIT) | \`umd/react.production.min.js\` |
| \`react-dom-$REACT_DOM_VERSION.production.min.js\` | react-dom $REACT_DOM_VERSION (MIT) | \`umd/react-dom.production.min.js\` |
| \`graphiql-$GRAPHIQL_VERSION.min.js\` | graphiql $GRAPHIQL_VERSION (MIT) | \`graphiql.min.js\`, its \`sourceMappingURL\` comment removed |
| \`graphiql-$GRAPHIQL_VERSION.min.css\` | graphiql $GRAPHIQL_VERSION (MIT) | \`graphiql.min.css\` |

Each package is the npm registry's tarball (\`$REGISTRY/<name>/-/<name>-<version>.tgz\`),
checked against the registry's sha512 before use. \`LICENSES/\` holds each package's
\`LICENSE\` file. The GraphiQL bundle also contains its own dependencies (graphql-js,
CodeMirror 5, markdown-it and others) under their licenses; see the graphiql package's
dependencies at https://github.com/graphql/graphiql.

SHA-256 of the files:

\`\`\`
$sums
\`\`\`
EOF

echo "Wrote $DEST:"
(cd "$DEST" && ls -l -- *.js *.css LICENSES/*)
echo "If a version changed, rename its file in api/src/graphiql.rs."
