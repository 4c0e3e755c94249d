"""A corpus of realistic FAKE secrets, and the places a developer's files put them.

Every value is generated here from a fixed seed in the real format (prefix,
alphabet, length, structure), so none of them is a live credential.  Each
``Secret`` says which marker kind must replace it and the snippets it is planted
in: source code (Python, JS, Go), YAML, JSON, ``.env`` and shell, diff lines,
build output lines and file-name-like strings.

``NEAR_MISSES`` are lines of ordinary code that mention the same words and must
come out unchanged.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

_RNG = random.Random(20240501)
ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
BASE32 = string.ascii_uppercase + "234567"
BASE64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"


def _rand(alphabet: str, n: int) -> str:
    while True:
        value = "".join(_RNG.choice(alphabet) for _ in range(n))
        # realistic tokens mix letters and digits (and cases, where the alphabet has both)
        if alphabet in (ALNUM, URLSAFE, BASE64) and not (
            any(c.isdigit() for c in value)
            and any(c.islower() for c in value)
            and any(c.isupper() for c in value)
        ):
            continue
        if alphabet in (HEX, UPPER_DIGITS, BASE32) and not (
            any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
        ):
            continue
        return value


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Secret:
    """``value`` must vanish from every snippet; ``kind`` names the marker that replaces it."""

    name: str
    kind: str
    value: str
    snippets: tuple[str, ...]  # templates: "{v}" is the value, "{j}" the value JSON-escaped

    def planted(self) -> list[str]:
        escaped = json.dumps(self.value)[1:-1]
        return [s.replace("{v}", self.value).replace("{j}", escaped) for s in self.snippets]

    @property
    def needles(self) -> tuple[str, ...]:
        """What must not survive: the value, or each line of a key's body (keys are
        also planted indented, diff-prefixed and JSON-escaped)."""
        if self.kind != "private-key":
            return (self.value,)
        return tuple(
            line for line in self.value.splitlines() if len(line) >= 16 and "-" not in line
        )


def _token_snippets(env_name: str) -> tuple[str, ...]:
    """Where a self-describing token turns up: with and without a telling name around it."""
    return (
        f'{env_name.lower()} = "{{v}}"\n',  # Python
        "client = Client(api_base, '{v}', timeout=3)\n",
        f"const {env_name.lower()} = `{{v}}`;\n",  # JS
        '\tcfg.Credential = "{v}"\n',  # Go
        f"{env_name.lower()}: {{v}}\n",  # YAML
        '  credentials:\n    value: "{v}"\n',
        f'{{"name": "ci", "{env_name.lower()}": "{{v}}"}}\n',  # JSON
        '{"items": ["{v}"]}\n',
        f"{env_name}={{v}}\n",  # .env
        f"export {env_name}='{{v}}'\n",  # shell
        "+    headers = {'X-Credential': '{v}'}\n",  # diff line
        f'-{env_name.lower()} = "{{v}}"\n',
        "error: request failed: credential {v} rejected (HTTP 401)\n",  # build output
        "  File \"app.py\", line 3, in <module>: ValueError: bad key '{v}'\n",
        "backups/{v}.json\n",  # file-name-like
        "cache/{v}/index.lock\n",
    )


def _pem(label: str, lines: int = 12) -> str:
    body = "\n".join(_rand(BASE64, 64) for _ in range(lines)) + "\n" + _rand(BASE64, 28) + "=="
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


_RSA = _pem("RSA PRIVATE KEY")
_EC = _pem("EC PRIVATE KEY", 3)
_OPENSSH = _pem("OPENSSH PRIVATE KEY", 6)
_PKCS8 = _pem("PRIVATE KEY", 16)
_ENCRYPTED = _pem("ENCRYPTED PRIVATE KEY", 8)
_PGP = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
    "Version: GnuPG v2\n\n"
    + "\n".join(_rand(BASE64, 64) for _ in range(8))
    + "\n="
    + _rand(BASE64, 4)
    + "\n-----END PGP PRIVATE KEY BLOCK-----"
)


def _pem_snippets(pem: str) -> tuple[str, ...]:
    diff = "".join(f"+{line}\n" for line in pem.splitlines())
    yaml_block = "tls:\n  key: |\n" + "".join(f"    {line}\n" for line in pem.splitlines())
    return (
        pem + "\n",  # a key file that slipped past the exclusion globs
        f'KEY = """\n{pem}\n"""\n',  # Python
        '{"type": "service_account", "private_key": "{j}\\n"}\n',  # JSON
        f"const key = `{pem}`;\n",  # JS
        yaml_block,  # YAML
        "diff --git a/deploy/key.txt b/deploy/key.txt\n@@ -0,0 +1,20 @@\n" + diff,
        "ssh: loading key {j} failed\n",  # build output
    )


_GCP_KEY_ID = _rand(HEX, 40)
_GCP_JSON = json.dumps(
    {
        "type": "service_account",
        "project_id": "demo-project-123456",
        "private_key_id": _GCP_KEY_ID,
        "private_key": _PKCS8 + "\n",
        "client_email": "ci-runner@demo-project-123456.iam.gserviceaccount.com",
        "client_id": "1" + _rand(string.digits, 20),
        "token_uri": "https://oauth2.googleapis.com/token",
    },
    indent=2,
)

_AWS_ID = "AKIA" + _rand(BASE32, 16)
_AWS_TEMP_ID = "ASIA" + _rand(BASE32, 16)
_AWS_SECRET = _rand(BASE64, 40)
_JWT = ".".join(
    (
        _b64url(b'{"alg":"HS256","typ":"JWT"}'),
        _b64url(json.dumps({"sub": _rand(HEX, 12), "name": "Ada", "iat": 1716239022}).encode()),
        _rand(URLSAFE, 43),
    )
)
_BASIC = base64.b64encode(f"deploy:{_rand(ALNUM, 14)}".encode()).decode()
_BEARER = _rand(URLSAFE, 40)
_PASSWORD = _rand(ALNUM, 10) + "!"
_DB_PASSWORD = _rand(ALNUM, 16)
_HIGH_ENTROPY = _rand(ALNUM, 32)

SECRETS: tuple[Secret, ...] = (
    # ---- private keys
    *(
        Secret(f"private-key-{label}", "private-key", pem, _pem_snippets(pem))
        for label, pem in (
            ("rsa", _RSA),
            ("ec", _EC),
            ("openssh", _OPENSSH),
            ("pkcs8", _PKCS8),
            ("encrypted", _ENCRYPTED),
            ("pgp", _PGP),
        )
    ),
    Secret(
        "private-key-without-end",
        "private-key",
        _RSA.split("\n-----END")[0],
        ("{v}\n", "{v}", "+{v}\n\nnext paragraph of a truncated paste\n"),
    ),
    # ---- AWS
    Secret("aws-access-key-id", "aws-access-key", _AWS_ID, _token_snippets("AWS_ACCESS_KEY_ID")),
    Secret("aws-temporary-key-id", "aws-access-key", _AWS_TEMP_ID, _token_snippets("AWS_KEY")),
    Secret(
        "aws-secret-access-key",
        "aws-secret-key",
        _AWS_SECRET,
        (
            "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPL3\naws_secret_access_key = {v}\n",
            'boto3.client("s3", aws_secret_access_key="{v}")\n',
            'AWS_SECRET_ACCESS_KEY="{v}"\n',
            '{"Credentials": {"AccessKeyId": "ASIAXYZ", "SecretAccessKey": "{v}"}}\n',
            "+aws configure set aws_secret_access_key {v}\n",
            "aws_secret: {v}\n",
        ),
    ),
    # ---- GCP service account (the key id, and the key inside the JSON)
    Secret("gcp-private-key-id", "gcp-service-account", _GCP_KEY_ID, (_GCP_JSON + "\n",)),
    Secret("gcp-private-key", "private-key", _PKCS8, (_GCP_JSON + "\n",)),
    # ---- VCS hosts
    *(
        Secret(
            f"github-{prefix}",
            "github-token",
            prefix + _rand(ALNUM, 36),
            _token_snippets("GITHUB_TOKEN"),
        )
        for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
    ),
    Secret(
        "github-fine-grained",
        "github-token",
        "github_pat_" + _rand(UPPER_DIGITS, 22) + "_" + _rand(ALNUM, 59),
        _token_snippets("GH_TOKEN"),
    ),
    Secret(
        "gitlab-pat", "gitlab-token", "glpat-" + _rand(URLSAFE, 20), _token_snippets("GITLAB_TOKEN")
    ),
    Secret(
        "gitlab-deploy", "gitlab-token", "gldt-" + _rand(URLSAFE, 20), _token_snippets("CI_DEPLOY")
    ),
    Secret(
        "gitlab-runner", "gitlab-token", "glrt-" + _rand(URLSAFE, 20), _token_snippets("RUNNER")
    ),
    # ---- chat and payments
    *(
        Secret(
            f"slack-{prefix}",
            "slack-token",
            f"{prefix}-{_rand(string.digits, 12)}-{_rand(string.digits, 13)}-{_rand(ALNUM, 24)}",
            _token_snippets("SLACK_BOT_TOKEN"),
        )
        for prefix in ("xoxb", "xoxp", "xoxa", "xoxr")
    ),
    Secret(
        "slack-app",
        "slack-token",
        f"xapp-1-A{_rand(UPPER_DIGITS, 10)}-{_rand(string.digits, 13)}-{_rand(HEX, 64)}",
        _token_snippets("SLACK_APP_TOKEN"),
    ),
    Secret(
        "slack-webhook",
        "slack-webhook",
        f"https://hooks.slack.com/services/T{_rand(UPPER_DIGITS, 8)}/B{_rand(UPPER_DIGITS, 8)}/"
        + _rand(ALNUM, 24),
        (
            'WEBHOOK = "{v}"\n',
            "curl -X POST -d @payload.json {v}\n",
            "notify:\n  url: {v}\n",
        ),
    ),
    Secret(
        "stripe-live", "stripe-key", "sk_live_" + _rand(ALNUM, 24), _token_snippets("STRIPE_KEY")
    ),
    Secret(
        "stripe-restricted",
        "stripe-key",
        "rk_live_" + _rand(ALNUM, 24),
        _token_snippets("STRIPE_RK"),
    ),
    # ---- API keys
    Secret(
        "google-api-key", "google-api-key", "AIza" + _rand(URLSAFE, 35), _token_snippets("MAPS_KEY")
    ),
    Secret(
        "openai-legacy", "openai-key", "sk-" + _rand(ALNUM, 48), _token_snippets("OPENAI_API_KEY")
    ),
    Secret(
        "openai-project",
        "openai-key",
        "sk-proj-" + _rand(URLSAFE, 100),
        _token_snippets("OPENAI_API_KEY"),
    ),
    Secret("jwt", "jwt", _JWT, _token_snippets("ID_TOKEN")),
    # ---- keyword assignments: the value goes, the name stays
    Secret(
        "password-assignment",
        "password-assignment",
        _PASSWORD,
        (
            'password = "{v}"\n',
            "db.connect(host, user='app', password='{v}')\n",
            '  "password": "{v}",\n',
            "password: {v}\n",
            "  password: '{v}'\n",
            "DB_PASSWORD={v}\n",
            "export PGPASSWORD={v}\n",
            "+PASSWD = '{v}'\n",
            "mysql --password={v} -u root shop\n",
            "pg_dump --password {v} shop > dump.sql\n",
            "<password>{v}</password>\n",
            "spring.datasource.password={v}\n",
            "const dbPassword = '{v}';\n",
            "Server=db01;Database=shop;User Id=sa;Password={v};\n",
            '$password = "{v}";\n',
            "pwd = '{v}'\n",
            "  'db_password' => '{v}',\n",
        ),
    ),
    Secret(
        "secret-assignment",
        "secret-assignment",
        _rand(ALNUM, 12),
        (
            'SECRET_KEY = "{v}"\n',
            "client_secret: {v}\n",
            '"api_key": "{v}"\n',
            "apikey={v}\n",
            "ACCESS_KEY={v}\n",
            "export API_TOKEN={v}\n",
            "token = '{v}'\n",
            "  x-api-key: {v}\n",
            "+    jwtSecret: '{v}',\n",
            "settings.secret = `{v}`\n",
        ),
    ),
    Secret(
        "high-entropy-after-keyword",
        "secret-assignment",
        _HIGH_ENTROPY,
        (
            "deploy --token {v} --region eu\n",
            "SECRET={v}\n",
            "upload(api_key={v})\n",
        ),
    ),
    # ---- connection strings and headers
    Secret(
        "url-password",
        "url-password",
        _DB_PASSWORD,
        (
            'DATABASE_URL = "postgres://app:{v}@db.internal:5432/shop"\n',
            "mysql://root:{v}@127.0.0.1/test\n",
            "mongodb+srv://svc:{v}@cluster0.abcde.mongodb.net/?retryWrites=true\n",
            "REDIS_URL=redis://:{v}@cache:6379/0\n",
            "amqp://guest:{v}@rabbit//\n",
            "+    remote = https://deploy:{v}@git.example.org/repo.git\n",
            "fatal: unable to access 'https://bot:{v}@git.example.org/r.git/': 403\n",
        ),
    ),
    Secret(
        "bearer",
        "authorization-header",
        _BEARER,
        (
            "curl -H 'Authorization: Bearer {v}' https://api.example.org\n",
            'headers = {"Authorization": "Bearer {v}"}\n',
            "Authorization: token {v}\n",
            "> authorization: Bearer {v}\n",
        ),
    ),
    Secret(
        "basic",
        "authorization-header",
        _BASIC,
        (
            "Authorization: Basic {v}\n",
            'curl -H "Authorization: Basic {v}" http://localhost:8080\n',
        ),
    ),
)

# Ordinary code that mentions the same words: it must come out unchanged.
NEAR_MISSES: tuple[str, ...] = (
    "password = getpass()\n",
    "password = getpass.getpass('Password: ')\n",
    'token = request.headers["X-Token"]\n',
    "def secret_key(self):\n",
    "    return self._secret_key\n",
    "token_type = 'bearer'\n",
    "max_tokens = 4096\n",
    "tokens = tokenize.generate_tokens(readline)\n",
    "for token in tokens:\n",
    "if token.type == tokenize.NAME:\n",
    "password = None\n",
    "password = ''\n",
    'password = os.environ["DB_PASSWORD"]\n',
    'password = os.getenv("DB_PASSWORD")\n',
    "password = os.environ.get('DB_PASSWORD', '')\n",
    "api_key = settings.API_KEY\n",
    "secret = secrets.token_hex(32)\n",
    "token = secrets.token_urlsafe()\n",
    "self.password = password\n",
    "conn = connect(user=user, password=password)\n",
    "    password=password,\n",
    "def login(username: str, password: str) -> Session:\n",
    "password: str\n",
    "password: Optional[str] = None\n",
    "    password: string;\n",
    "DB_PASSWORD=${DB_PASSWORD}\n",
    "password: ${DB_PASSWORD}\n",
    'password: "{{ vault_db_password }}"\n',
    "password = '<your password here>'\n",
    "API_KEY=changeme\n",
    "PASSWORD=\n",
    "token: ${{ secrets.GITHUB_TOKEN }}\n",
    "if password == expected:\n",
    "if not token:\n",
    "print(f'token {token!r} is invalid')\n",
    "headers['Authorization'] = 'Bearer ' + token\n",
    'headers = {"Authorization": f"Bearer {token}"}\n',
    "authorization = self.headers.get('Authorization')\n",
    "req.add_header('Authorization', 'Basic %s' % encoded)\n",
    "url = 'https://docs.python.org/3/library/secrets.html'\n",
    "git@github.com:python/cpython.git\n",
    "url = f'{scheme}://{user}:{password}@{host}/'\n",
    "postgres://user:password@localhost/db\n",
    "SECRET_KEY_FILE = '/run/secrets/django'\n",
    "parser.add_argument('--password', help='the password')\n",
    "parser.add_argument('--token', default=None)\n",
    "# the token is read from the keyring\n",
    "PWD=$(pwd)\n",
    "pwd = os.getcwd()\n",
    "sha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'\n",
    "id = '123e4567-e89b-12d3-a456-426614174000'\n",
    "integrity sha512-Q2Lv8p3HcPHPY/XL3JzS4P0q1uYqKZ3vC6m7K5dRwS8lQw7rF9nT2eA1bC4dE6fG==\n",
    'version = "1.2.3"\n',
    "keyboard = Keyboard(layout='qwerty')\n",
    "task-runner --disk-cache /tmp/cache\n",
    "globals-config-loader: enabled\n",
    "const askQuestion = async () => {};\n",
    "img = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk'\n",
    "-----BEGIN CERTIFICATE-----\n",
    "PEM_MARKER = '-----BEGIN RSA PRIVATE KEY-----'\n",
    "    if line.startswith('-----BEGIN PRIVATE KEY-----'):\n",
    "passwords = load_passwords(path)\n",
    "password_hash = hasher.hash(password)\n",
    "secret_name = 'prod/db'\n",
    "token_url = 'https://oauth2.example.org/token'\n",
    "TOKEN_RE = re.compile(r'[A-Za-z]+')\n",
    "access_key_id = credentials.access_key\n",
    "authorization_url, state = oauth.authorization_url(base)\n",
    "    # Two-token keywords\n",
    "faster on the per-token hot path\n",
    "# no non-secret patches pushed\n",
    "jsonnet_token = r'[^\\W\\d]\\w*'\n",
    "                token = b'string'\n",
    "        Token: '#dcdccc',\n",
)
