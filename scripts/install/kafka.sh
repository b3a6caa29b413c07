#!/usr/bin/env bash
# Apache Kafka (KRaft mode, no ZooKeeper) for the integration tests, from Maven Central's jars:
# a generated pom in the cache and `mvn dependency:copy-dependencies` put the broker's runtime
# class path in $HEADLESS_CLIENT_CACHE/kafka/<version>/libs; the suite starts `kafka.Kafka`
# itself (tests/integration/servers/kafka.py). Idempotent: a finished install leaves a stamp,
# and Maven's own downloads stay in $HEADLESS_CLIENT_CACHE/m2 for the next build.
#   KAFKA_VERSION=4.1.1 scripts/install/kafka.sh
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
LOG4J_VERSION=${LOG4J_VERSION:-2.25.3}
SLF4J_VERSION=${SLF4J_VERSION:-2.0.17}
CACHE=${HEADLESS_CLIENT_CACHE:-$HOME/.cache/headless-client}
home=$CACHE/kafka/$KAFKA_VERSION
stamp=$home/installed

if [ -e "$stamp" ]; then
  ln -sfn "$KAFKA_VERSION" "$CACHE/kafka/current"
  exit 0
fi
# One build at a time per cache (two test runs may start together); the winner's stamp ends
# the other's wait.
mkdir -p "$CACHE/kafka"
exec 9>"$CACHE/kafka/.lock"
flock 9
if [ -e "$stamp" ]; then
  ln -sfn "$KAFKA_VERSION" "$CACHE/kafka/current"
  exit 0
fi

# Java 17 (Kafka 4's brokers need it) and Maven, from Debian where missing.
need=()
if ! command -v java >/dev/null 2>&1 || ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
  need+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  . "$(dirname "$0")/apt.sh"
  apt_install "${need[@]}"
fi

echo "== fetching Kafka $KAFKA_VERSION's jars from Maven Central"
mkdir -p "$CACHE/kafka" "$CACHE/m2"
build=$(mktemp -d "$CACHE/kafka/build.XXXXXX")
trap 'rm -rf "$build"' EXIT
# The broker (kafka_2.13 brings the server, raft, metadata, storage, coordinators, clients and
# Scala), plus log4j 2 behind SLF4J 2 so a broker that fails to start says why in its log.
cat >"$build/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>headless-client.test</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
mvn -q -B -Dstyle.color=never -f "$build/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$build/libs"
ls "$build/libs"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null

# A smoke check that the class path holds the broker's entry points.
java -cp "$build/libs/*" kafka.tools.StorageTool random-uuid >/dev/null

rm -rf "$home"
mkdir -p "$home"
mv "$build/libs" "$build/pom.xml" "$home/"
echo "$KAFKA_VERSION" >"$stamp"
ln -sfn "$KAFKA_VERSION" "$CACHE/kafka/current"
echo "== Kafka $KAFKA_VERSION ready in $home"
