"""Phrase banks for the 112 call simulator: what callers and call-takers say.

Colloquial Indonesian as heard on 112 lines in Kendari, Purworejo and Jakarta (fillers,
regional particles, hesitations), plus English for the ~10 % of callers who use it.
Every sentence is a template whose ``{slots}`` are filled at random (streets, villages,
landmarks, names, numbers), so two simulated calls rarely share a sentence.

The text is written to be *spoken by espeak-ng*, not read: ``112`` is spelled
"satu satu dua" (espeak would say "seratus dua belas"), acronyms are spelled the way
people say them ("pe el en", "ha pe"), and commas / "..." mark the pauses of a caller
who is thinking or panicking.

Template syntax: ``{name}`` draws from the slot ``name``; ``{a|b|}`` picks one of the
inline alternatives (an empty alternative makes the text optional). Slot values may
contain further slots.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from classifier.errors import InvalidParameterError
from classifier.formats import LABELS

__all__ = [
    "EMERGENCY_INCIDENTS",
    "LABELS",
    "NON_EMERGENCY_TOPICS",
    "PRANK_KINDS",
    "background_talk",
    "call_taker_ghost_prompts",
    "call_taker_greeting",
    "call_taker_prompts",
    "caller_turns",
    "laughter_text",
    "pick_topic",
]


EMERGENCY_INCIDENTS: tuple[str, ...] = (
    "fire",
    "traffic_accident",
    "fallen_tree",
    "riot",
    "flood",
    "ambulance",
    "drugs",
    "security_disturbance",
)
NON_EMERGENCY_TOPICS: tuple[str, ...] = (
    "phone_locked",
    "no_signal",
    "pdam_water",
    "pln_power_cut",
    "street_light_out",
    "damaged_road",
    "information",
)
PRANK_KINDS: tuple[str, ...] = (
    "fake_incident",
    "insult",
    "giggle",
    "hoax_report",
    "silly_question",
    "silent_prank",
)
_LANGUAGES: tuple[str, ...] = ("id", "en")

_TOPICS: dict[str, tuple[str, ...]] = {
    "emergency": EMERGENCY_INCIDENTS,
    "non_emergency": NON_EMERGENCY_TOPICS,
    "prank": PRANK_KINDS,
    "ghost": ("none",),
}
# Rough shares of real 112 traffic per topic (accidents and medical calls dominate).
_TOPIC_WEIGHTS: dict[str, tuple[float, ...]] = {
    "emergency": (0.15, 0.22, 0.08, 0.06, 0.08, 0.23, 0.05, 0.13),
    "non_emergency": (0.20, 0.12, 0.12, 0.16, 0.10, 0.10, 0.20),
    "prank": (0.22, 0.17, 0.20, 0.15, 0.18, 0.08),
    "ghost": (1.0,),
}

_Slot = tuple[str, ...] | Callable[[np.random.Generator], str]
_SLOT_RE = re.compile(r"\{([^{}]*)\}")

# --------------------------------------------------------------------------- slot helpers

_DIGITS_ID = ("nol", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan")
_DIGITS_EN = ("oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _phone(rng: np.random.Generator, digits: Sequence[str], prefix: str) -> str:
    # Indonesian mobile numbers: 08xx plus 7-9 digits, read digit by digit.
    n = int(rng.integers(7, 10))
    body = " ".join(digits[int(d)] for d in rng.integers(0, 10, size=n))
    second = digits[int(rng.choice([1, 2, 5, 7, 9]))]
    return f"{prefix} {digits[8]} {second} {digits[int(rng.integers(1, 10))]} {body}"


def _phone_id(rng: np.random.Generator) -> str:
    return _phone(rng, _DIGITS_ID, "nol")


def _phone_en(rng: np.random.Generator) -> str:
    return _phone(rng, _DIGITS_EN, "oh")


def _int_slot(lo: int, hi: int) -> Callable[[np.random.Generator], str]:
    def draw(rng: np.random.Generator) -> str:
        value = int(rng.integers(lo, hi + 1))
        # "112" in a sentence reads as the emergency number itself, never as a plate.
        return str(value + 1 if value == 112 else value)

    return draw


# --------------------------------------------------------------------------- Indonesian

_STREETS: tuple[str, ...] = (
    "Jalan Sudirman",
    "Jalan Ahmad Yani",
    "Jalan Diponegoro",
    "Jalan Gatot Subroto",
    "Jalan Imam Bonjol",
    "Jalan Pahlawan",
    "Jalan Merdeka",
    "Jalan Pattimura",
    "Jalan Sam Ratulangi",
    "Jalan Ki Hajar Dewantara",
    "Jalan Veteran",
    "Jalan Kartini",
    "Jalan Hasanuddin",
    "Jalan Sultan Agung",
    "Jalan Saranani",
    "Jalan Abdullah Silondae",
    "Jalan Edi Sabara",
    "Jalan Bunggasi",
    "Jalan Malaka",
    "Jalan Tentara Pelajar",
    "Jalan Kolonel Sugiyono",
    "Jalan Magelang",
    "Jalan Raya Kutoarjo",
    "Jalan Brigjen Katamso",
    "Jalan Daan Mogot",
    "Jalan Hayam Wuruk",
    "Jalan Gajah Mada",
    "Jalan Kramat Raya",
    "Jalan Raya Bogor",
    "Jalan Casablanca",
    "Jalan Pramuka",
    "Jalan Kalimalang",
    "Jalan Mawar",
    "Jalan Kenanga",
    "Jalan Cendrawasih",
    "Jalan Rajawali",
    "Jalan Anggrek",
)

# How a caller addresses the call-taker; drawn once per call.
_HON_ID: tuple[str, ...] = ("pak", "bu", "pak", "bu", "mas", "mbak", "pak polisi", "bapak", "ibu")
_HON_EN: tuple[str, ...] = ("", "", "sir", "madam", "please")

_SLOTS_ID: dict[str, _Slot] = {
    "street": (*_STREETS, "jalan poros", "jalan baipas", "jalan lingkar", "jalan raya"),
    "kel": (
        "Kelurahan Kambu",
        "Kelurahan Anduonohu",
        "Kelurahan Wua Wua",
        "Kelurahan Mandonga",
        "Kelurahan Lepo Lepo",
        "Kelurahan Puuwatu",
        "Kelurahan Kadia",
        "Kelurahan Baruga",
        "Kelurahan Poasia",
        "Kelurahan Kemaraya",
        "Kelurahan Pangenjurutengah",
        "Kelurahan Baledono",
        "Kelurahan Doplang",
        "Kelurahan Cangkrep",
        "Kelurahan Sindurjan",
        "Desa Bayan",
        "Desa Loano",
        "Desa Butuh",
        "Kelurahan Kebon Jeruk",
        "Kelurahan Tebet Timur",
        "Kelurahan Cempaka Putih",
        "Kelurahan Pademangan",
        "Kelurahan Cilandak",
        "Kelurahan Kampung Melayu",
        "Kelurahan Rawamangun",
        "Kelurahan Duren Sawit",
        "Kampung Bali",
        "Kampung Salo",
    ),
    "landmark": (
        "masjid",
        "masjid raya",
        "masjid Al Ikhlas",
        "musala",
        "pasar",
        "pasar sentral",
        "pasar baru",
        "sekolah",
        "es de negeri {n_small}",
        "es em pe negeri {n_small}",
        "puskesmas",
        "kantor polisi",
        "polsek",
        "pos ronda",
        "pom bensin",
        "Indomaret",
        "Alfamart",
        "gereja",
        "lapangan bola",
        "jembatan",
        "terminal",
        "stasiun",
        "rumah sakit",
        "kantor kelurahan",
        "kantor camat",
        "warung bakso",
        "warung makan",
        "bengkel motor",
        "tugu em te ka",
        "kampus",
        "alun-alun",
        "hotel",
        "bank be er i",
        "kuburan",
        "kantor pos",
        "toko bangunan",
        "lampu merah",
        "perempatan",
        "pertigaan",
        "bundaran",
        "kos-kosan",
        "ruko",
        "pangkalan ojek",
        "sawah",
        "pantai",
        "kali",
    ),
    "rel": (
        "dekat",
        "di depan",
        "depan",
        "di samping",
        "samping",
        "di belakang",
        "seberang",
        "sebelah",
        "tidak jauh dari",
        "pas di depan",
        "sebelum",
        "habis",
    ),
    "loc": (
        "di {street}",
        "di {street}, {rel} {landmark}",
        "{rel} {landmark}, di {street}",
        "di {kel}",
        "di {street}, {kel}",
        "di gang {flower}, {rel} {landmark}",
        "di lorong {flower}, {kel}",
        "di perumahan {housing}, blok {letter} nomor {num}",
        "di {street} nomor {num}",
        "di er te {n_small} er we {n_small}, {kel}",
        "{rel} {landmark}",
        "di {kel}, {rel} {landmark}",
        "di {street}, arah ke {landmark}",
        "di {street}, pas di tikungan",
        "di {street} ujung, {rel} {landmark}",
    ),
    "flower": (
        "Mawar",
        "Melati",
        "Kenanga",
        "Anggrek",
        "Dahlia",
        "Flamboyan",
        "Kamboja",
        "Cempaka",
        "Teratai",
        "Seroja",
        "Delima",
        "Jambu",
    ),
    "housing": (
        "Griya Asri",
        "Bumi Permai",
        "Graha Indah",
        "Puri Kendari",
        "Citra Land",
        "Taman Sari",
        "Villa Mutiara",
        "Pondok Indah",
    ),
    "letter": ("a", "be", "ce", "de", "e", "ef", "ge", "ha"),
    "num": _int_slot(1, 150),
    "n_small": _int_slot(1, 12),
    "two_four": ("dua", "tiga", "empat", "dua atau tiga", "tiga empat"),
    "many": ("sepuluh", "dua puluh", "tiga puluh", "lima puluh", "puluhan", "banyak sekali"),
    "age": _int_slot(2, 85),
    "minutes": ("lima", "sepuluh", "lima belas", "dua puluh", "tiga puluh"),
    "hour": ("sembilan", "sepuluh", "sebelas", "dua belas", "satu", "dua"),
    "name": ("{name_m}", "{name_f}"),
    "own_name": ("{name_m}", "{name_f}"),
    "name_m": (
        "Budi",
        "Andi",
        "Agus",
        "Rudi",
        "Joko",
        "Ahmad",
        "La Ode Rahman",
        "Wayan",
        "Hendra",
        "Slamet",
        "Yusuf",
        "Arif",
        "Bambang",
        "Irfan",
        "Darmawan",
        "Sugeng",
        "Ilham",
        "Fikri",
        "Taufik",
        "Samsul",
    ),
    "name_f": (
        "Sri",
        "Siti",
        "Dewi",
        "Wa Ode Nurma",
        "Nur",
        "Rina",
        "Yuli",
        "Fitri",
        "Ani",
        "Wati",
        "Sulastri",
        "Ratna",
        "Maya",
        "Indah",
        "Lestari",
        "Nining",
    ),
    "phone": _phone_id,
    "hon": _HON_ID,
    "filler": ("eh", "anu", "eh anu", "ee", "em", "eh...", "anu...", "apa namanya", "itu"),
    "part": (
        "",
        "",
        "",
        "",
        " toh",
        " mi",
        " lho",
        " ini",
        " nih",
        " ya",
        " dong",
        " nggih",
    ),
    "vehicle": (
        "motor",
        "mobil",
        "truk",
        "angkot",
        "bus",
        "mobil pikap",
        "bentor",
        "taksi",
        "ojek",
        "mobil tangki",
    ),
    "color": ("hitam", "putih", "merah", "biru", "silver", "abu-abu", "kuning", "hijau"),
    "plate": (
        "de te {num} {letter} {letter}",
        "a a {num} {letter}",
        "be {num} {letter} {letter}",
        "de te {num}",
    ),
    "relative": (
        "ibu",
        "bapak",
        "mama",
        "papa",
        "suami",
        "istri",
        "anak",
        "nenek",
        "kakek",
        "adik",
        "kakak",
        "tetangga",
        "mertua",
        "om",
        "tante",
    ),
    "fire_state": ("naik ke atap", "besar", "merembet ke rumah sebelah", "tidak bisa dipadamkan"),
    "victim_state": ("masih di jalan", "tergeletak di jalan", "berdarah", "tidak bergerak"),
    "condition": (
        "pingsan",
        "sesak napas",
        "tidak sadarkan diri",
        "jatuh di kamar mandi",
        "kena serangan jantung",
        "kejang-kejang",
        "muntah darah",
        "tidak bisa bangun",
        "jatuh dari tangga",
        "kena stroke kayaknya, mulutnya mencong",
        "pendarahan",
        "keracunan makanan",
        "dadanya sakit sekali",
        "tidak bisa napas",
        "jatuh dari pohon",
    ),
    "open": (
        "",
        "",
        "halo, ",
        "halo {hon}, ",
        "halo {hon}, ",
        "halo? ",
        "iya halo, ",
        "{hon}, ",
        "tolong {hon}, ",
        "tolong, tolong, ",
        "eh anu, ",
        "selamat malam {hon}, ",
        "permisi {hon}, ",
        "halo, ini satu satu dua ya? ",
        "halo, halo, ",
        "assalamualaikum {hon}, ",
        "{filler}, ",
    ),
    # Openers for templates that already start with an honorific ("pak, ...").
    "open_short": ("", "", "halo, ", "halo? ", "permisi, ", "{filler}, ", "iya, "),
    "urg_tail": (
        "",
        "",
        "",
        " {hon}",
        ", tolong cepat",
        ", cepat ya {hon}",
        ", tolong segera",
        ", cepat datang",
        "{part}",
        ", tolong {hon}, cepat",
    ),
}

_ID: dict[str, tuple[str, ...]] = {
    # ---- emergency: first report per incident
    "report.fire": (
        "ada kebakaran {loc}",
        "ada rumah kebakaran {loc}",
        "rumah tetangga saya {terbakar|kebakaran}, apinya besar sekali",
        "tolong kirim pemadam, ada kebakaran {loc}",
        "ini ada kebakaran {hon}, {loc}, apinya sudah {fire_state}",
        "ada {gudang|toko|ruko|warung|kios|bengkel|rumah kos} terbakar {loc}",
        "ada kebakaran lahan {loc}, apinya sudah dekat rumah warga",
        "kompor gas meledak di rumah {name}, sekarang apinya besar",
        "ada asap hitam tebal dari {rumah sebelah|pasar|gudang belakang rumah}, kayaknya kebakaran",
        "api, api {hon}! rumah saya terbakar!",
        "ada korsleting listrik, {tiang listrik|rumah di depan} terbakar",
        "ada mobil terbakar {loc}",
        "kebakaran {hon}, kebakaran, {loc}",
        "{hon}, ada api besar {loc}, tolong kirim damkar",
    ),
    "detail.fire": (
        "apinya {makin besar|sudah besar sekali|sudah merembet ke {two_four} rumah}",
        "sudah {two_four} rumah yang kena",
        "ada {orang|anak kecil|nenek|ibu-ibu} masih di dalam, {hon}",
        "sepertinya tidak ada korban, semua sudah keluar",
        "warga sudah coba siram pakai air, tapi tidak bisa",
        "asapnya tebal sekali, saya tidak bisa lihat apa-apa",
        "mobil damkar tidak bisa masuk, gangnya sempit",
        "apinya dari dapur, kompor gas katanya",
        "sudah kira-kira {minutes} menit terbakar",
        "ada tabung gas di dalam, takutnya meledak",
        "rumahnya dari kayu semua, cepat sekali apinya",
        "anginnya kencang, apinya ke mana-mana",
    ),
    "report.traffic_accident": (
        "ada kecelakaan {loc}",
        "ada tabrakan {vehicle} sama {vehicle} {loc}",
        "ada {vehicle} terbalik {loc}",
        "ada orang ditabrak lari {loc}",
        "ada kecelakaan {hon}, {vehicle} tabrakan, korbannya {victim_state}",
        "tolong kirim ambulans, ada kecelakaan {loc}",
        "motor saya ditabrak {vehicle} {loc}, kaki saya sakit sekali",
        "ada anak sekolah ditabrak motor {loc}",
        "ada truk masuk ke parit {loc}",
        "ada kecelakaan beruntun {loc}, banyak mobil",
        "ada {vehicle} tabrak tiang listrik {loc}",
        "barusan ada tabrakan keras sekali {loc}",
    ),
    "detail.traffic_accident": (
        "korbannya {two_four} orang",
        "satu orang tidak sadar, kepalanya berdarah",
        "korbannya masih sadar tapi kakinya patah kayaknya",
        "pengendaranya kabur, {hon}",
        "motornya hancur, orangnya masih tergeletak",
        "jalan macet total sekarang",
        "ada bau bensin, takutnya terbakar",
        "warga sudah ramai, tapi tidak ada yang berani angkat korbannya",
        "platnya {plate}",
        "mobilnya warna {color}, kabur ke arah {landmark}",
        "korbannya anak muda, tidak pakai helm",
        "ada ibu-ibu sama anaknya, anaknya menangis terus",
    ),
    "report.fallen_tree": (
        "ada pohon tumbang {loc}",
        "ada pohon besar tumbang, menutup jalan {loc}",
        "pohon tumbang menimpa {rumah warga|mobil|motor|warung|orang lewat} {loc}",
        "angin kencang {hon}, pohon di {landmark} tumbang ke jalan",
        "ada pohon mau roboh {loc}, sudah miring sekali",
        "{hon}, pohon tumbang kena kabel listrik {loc}",
    ),
    "detail.fallen_tree": (
        "jalannya tidak bisa dilewati sama sekali",
        "kabel listriknya ikut putus, ada percikan api",
        "ada orang tertimpa, kakinya terjepit",
        "tidak ada korban, tapi jalannya tertutup",
        "pohonnya besar, pohon {mangga|beringin|asam|kelapa|mahoni|trembesi}",
        "hujannya masih deras, anginnya kencang",
        "warga sudah coba potong, tapi terlalu besar",
        "mobil-mobil sudah antre panjang",
    ),
    "report.riot": (
        "ada tawuran {loc}",
        "ada anak-anak sekolah tawuran {loc}, bawa batu sama kayu",
        "ada keributan {loc}, warga bentrok",
        "ada rombongan pemuda lempar-lempar batu {loc}",
        "ada perkelahian antar kampung {loc}, ramai sekali",
        "ada orang bawa parang, mau serang warga {loc}",
        "ada geng motor bikin rusuh {loc}",
    ),
    "detail.riot": (
        "jumlahnya banyak, mungkin {many} orang",
        "ada yang bawa {parang|senjata tajam|busur|panah|kayu|batu}",
        "sudah ada yang luka kena batu",
        "kaca rumah warga pecah semua",
        "mereka masih di sini, tolong cepat",
        "ada {motor|pos ronda} yang dibakar",
        "saya sembunyi di dalam rumah",
        "warga takut keluar rumah",
    ),
    "report.flood": (
        "banjir {hon}, {loc}",
        "air sudah masuk rumah {loc}",
        "ada banjir besar {loc}, airnya naik terus",
        "sungai meluap {hon}, {kel} kebanjiran",
        "tanggul jebol {loc}, airnya deras",
        "tolong {hon}, kami terjebak banjir {loc}",
        "ada banjir bandang {loc}, rumah-rumah hanyut",
    ),
    "detail.flood": (
        "airnya sudah {selutut|sepinggang|sedada|sampai atap}",
        "ada {nenek|orang tua|bayi|orang sakit|anak-anak} yang belum bisa keluar",
        "kami butuh perahu karet",
        "listriknya sudah mati",
        "hujannya belum berhenti dari tadi malam",
        "ada {two_four} keluarga yang terjebak di atas atap",
        "arusnya deras, tidak bisa jalan",
    ),
    "report.ambulance": (
        "butuh ambulans {hon}, {relative} saya {condition}",
        "tolong kirim ambulans, {relative} saya {condition}",
        "{relative} saya {condition}, tolong {hon}",
        "ada orang {pingsan|jatuh|kejang-kejang} di {landmark}",
        "istri saya mau melahirkan, ketubannya sudah pecah",
        "anak saya {kejang|demam tinggi dan kejang|jatuh dari motor|tersedak|keracunan}",
        "ada orang tenggelam di {sungai|kolam|pantai|kali}",
        "tolong {hon}, {relative} saya {condition}, saya tidak tahu harus bagaimana",
    ),
    "detail.ambulance": (
        "umurnya {age} tahun",
        "dia masih bernapas, tapi tidak menjawab",
        "dia punya riwayat {darah tinggi|jantung|diabetes|asma}",
        "tadi sempat muntah",
        "bibirnya sudah biru",
        "kami tidak punya kendaraan",
        "sudah kami baringkan",
        "badannya dingin sekali",
        "sudah dari {minutes} menit yang lalu",
        "matanya tidak mau buka",
    ),
    "report.drugs": (
        "saya mau lapor, ada transaksi narkoba {loc}",
        "ada yang pakai sabu di rumah kos {loc}",
        "ada orang jual obat terlarang {loc}",
        "banyak anak muda kumpul-kumpul ngelem {loc}",
        "di warung {loc} sering jual obat, {hon}, anak-anak pada mabuk",
        "ada paket mencurigakan {loc}, kayaknya narkoba",
    ),
    "detail.drugs": (
        "biasanya mereka kumpul jam {hour} malam",
        "orangnya {two_four}, pakai motor {color}",
        "sudah sering, warga resah",
        "saya tidak mau disebut namanya, {hon}",
        "mereka masih di sana sekarang",
        "yang datang beli banyak, anak sekolah juga",
    ),
    "report.security_disturbance": (
        "ada maling {loc}",
        "rumah saya kemalingan, {hon}",
        "ada orang mencurigakan mondar-mandir {loc}",
        "ada orang mabuk bikin onar {loc}",
        "motor saya dicuri {loc}",
        "saya dibegal {loc}, tas saya diambil",
        "tetangga saya berantem, suaminya pukul istrinya",
        "ada orang mengamuk bawa pisau {loc}",
        "ada orang masuk rumah saya, saya sembunyi di kamar",
        "ada yang coba bongkar pintu rumah saya",
        "ada copet di {landmark}, {hon}",
    ),
    "detail.security_disturbance": (
        "orangnya {two_four}, pakai {jaket hitam|helm|penutup muka|kaos merah}",
        "mereka kabur pakai motor ke arah {landmark}",
        "dia masih di sini, {hon}",
        "pintunya dicongkel",
        "yang hilang {motor|ha pe|dompet|tas|televisi|perhiasan}",
        "istrinya sudah berdarah",
        "saya takut, {hon}",
        "warga sudah kepung orangnya",
    ),
    "location": (
        "{loc}",
        "{loc}, {hon}",
        "alamatnya {loc}",
        "di... {loc}",
        "{filler}, {loc}",
        "saya kurang tahu nama jalannya, pokoknya {rel} {landmark}",
        "masuk lorong samping {landmark}, {hon}",
        "itu lho {hon}, {loc}",
        "{loc}{part}",
        "kalau dari {landmark}, lurus terus, {loc}",
    ),
    "identity": (
        "nama saya {own_name}",
        "saya {own_name}, {hon}",
        "saya {own_name}, nomor saya {phone}",
        "nomor ha pe saya {phone}",
        "saya tetangganya, nama saya {own_name}",
        "saya {own_name}, warga sini",
        "saya yang lewat saja, {hon}",
    ),
    "urgency": (
        "cepat {hon}, tolong",
        "tolong cepat ya {hon}",
        "sudah parah sekali ini",
        "aduh, cepat {hon}",
        "{hon}, tolong, saya panik",
        "berapa lama lagi, {hon}?",
        "kirim secepatnya ya",
        "tolong, tolong, cepat",
    ),
    "closing.emergency": (
        "iya {hon}, terima kasih",
        "baik {hon}, saya tunggu {di sini|di depan {landmark}|di pinggir jalan}",
        "iya, cepat ya {hon}",
        "oke {hon}, makasih banyak",
        "iya {hon}, terima kasih, cepat ya",
        "iya {hon}, saya tunggu{part}",
        "makasih {hon}, tolong cepat ya",
        "baik {hon}, saya jaga di sini sampai petugas datang",
        "iya, saya tunggu di depan {landmark}, {hon}",
        "baik, baik, saya tunggu",
        "siap {hon}, terima kasih",
        "iya iya, saya tunggu",
    ),
    # ---- non-emergency
    "request.phone_locked": (
        "{hon}, ini ha pe saya terkunci, cuma bisa panggilan darurat, bagaimana cara bukanya?",
        "maaf {hon}, saya lupa pola kunci ha pe saya",
        "ha pe anak saya terkunci, terus tadi kepencet nomor ini",
        "{hon}, ha pe saya minta kode puk, itu apa ya?",
        "kartu sim saya terblokir, bisa dibantu {hon}?",
        "ini ha pe saya tiba-tiba terkunci, saya harus bagaimana?",
    ),
    "detail.phone_locked": (
        "merknya {Samsung|Oppo|Vivo|Xiaomi|Realme}",
        "sudah saya coba berkali-kali",
        "jadi saya harus ke mana, {hon}?",
        "di konter katanya harus reset",
        "ada data penting di dalamnya",
    ),
    "request.no_signal": (
        "{hon}, di sini tidak ada sinyal sama sekali",
        "sinyal di {kel} hilang dari kemarin",
        "ha pe saya cuma bisa telepon darurat, tidak ada sinyal",
        "saya mau lapor, jaringan internet mati terus",
        "kenapa ya {hon}, ha pe saya tulisannya panggilan darurat saja",
    ),
    "detail.no_signal": (
        "providernya {Telkomsel|Indosat|ex el|tri}",
        "sudah dari {two_four} hari",
        "semua tetangga juga begitu",
        "saya tinggal {loc}",
    ),
    "request.pdam_water": (
        "air pe de a em di rumah saya mati sudah {two_four} hari",
        "pipa pe de a em bocor {loc}, airnya terbuang-buang",
        "airnya keruh sekali {hon}, warnanya coklat",
        "mau lapor, air tidak mengalir dari pagi",
    ),
    "detail.pdam_water": (
        "saya sudah telepon kantornya, tidak diangkat",
        "satu er te airnya mati semua",
        "sudah bayar tagihan, tapi airnya tidak jalan",
        "alamat saya {loc}",
    ),
    "request.pln_power_cut": (
        "listrik di {kel} padam dari tadi {sore|siang|pagi}",
        "lampu mati semua di er te kami, kapan nyala lagi?",
        "{hon}, listrik padam, saya mau lapor ke pe el en",
        "token listrik saya error, tidak bisa diisi",
        "ada kabel listrik putus {loc}",
    ),
    "detail.pln_power_cut": (
        "sudah {two_four} jam padam",
        "di rumah ada orang tua pakai alat oksigen",
        "tetangga juga mati semua",
        "saya sudah telepon pe el en, sibuk terus",
    ),
    "request.street_light_out": (
        "lampu jalan {loc} mati, gelap sekali",
        "lampu penerangan jalan di {street} sudah lama mati, rawan begal",
        "mau lapor, lampu lalu lintas di {landmark} mati",
    ),
    "detail.street_light_out": (
        "sudah {two_four} minggu mati",
        "kalau malam banyak yang jatuh di situ",
        "sudah lapor ke kelurahan, belum diperbaiki",
    ),
    "request.damaged_road": (
        "jalan {loc} berlubang besar, sering ada motor jatuh",
        "aspalnya rusak parah di {street}",
        "ada jalan amblas {loc}",
        "mau lapor jalan rusak {loc}, kalau hujan jadi kolam",
    ),
    "detail.damaged_road": (
        "lubangnya dalam sekali",
        "kemarin ada ibu-ibu jatuh di situ",
        "sudah lama tidak diperbaiki",
        "kira-kira {num} meter rusaknya",
    ),
    "request.information": (
        "mau tanya, nomor kantor polisi terdekat berapa?",
        "{hon}, cara bikin es ka ce ka bagaimana?",
        "mau tanya, apotek yang buka dua puluh empat jam di mana ya?",
        "nomor pemadam kebakaran berapa ya {hon}?",
        "kantor catatan sipil buka jam berapa?",
        "mau tanya jadwal vaksin di puskesmas",
        "rumah sakit yang terima be pe je es di mana ya?",
        "ini satu satu dua itu untuk apa saja, {hon}?",
        "saya mau lapor kehilangan ka te pe, ke mana ya?",
        "mau tanya, jalan ke {landmark} lewat mana ya?",
    ),
    "detail.information": (
        "soalnya saya orang baru di sini",
        "yang paling dekat dari {landmark}",
        "jadi bagaimana ya {hon}?",
        "nomornya berapa, {hon}?",
        "saya harus lapor ke mana?",
    ),
    "ne_extra": (
        "jadi bagaimana ya {hon}?",
        "tolong dibantu ya {hon}",
        "{filler}, begitu {hon}",
        "saya harus lapor ke mana?",
        "alamat saya {loc}",
    ),
    "closing.non_emergency": (
        "oh begitu, baik {hon}, terima kasih",
        "oh, bukan di sini ya, maaf {hon}",
        "oke, nanti saya hubungi ke sana",
        "iya, makasih {hon}",
        "baik, terima kasih infonya",
        "oh iya iya, maaf mengganggu",
        "ya sudah {hon}, terima kasih",
    ),
    # ---- pranks
    "prank.fake_incident.open": (
        "ada kebakaran di rumah saya!",
        "{hon}, ada maling di sekolah!",
        "ada kecelakaan di depan rumah {name}!",
        "tolong, ada harimau di {landmark}!",
        "ada hantu di rumah saya, {hon}!",
        "ada dinosaurus di jalan, {hon}!",
        "ada orang mati di {landmark}!",
        "tolong {hon}, teman saya diculik alien!",
        "ada banjir di kamar mandi saya!",
        "{hon}, ada buaya di {landmark}!",
    ),
    "prank.fake_incident.mid": (
        "di rumah... di rumah {name}, {laugh}",
        "cepat datang ya {hon}!",
        "{laugh}",
        "bohong {hon}, {laugh}",
        "kena prank! {laugh}",
        "eh jangan ketawa",
        "ssst, nanti ketahuan",
        "di {street}, {laugh}",
        "serius {hon}, serius!",
    ),
    "prank.fake_incident.close": (
        "{laugh}",
        "dadah {hon}! {laugh}",
        "bohong! {laugh}",
        "prank! {laugh}",
    ),
    "prank.insult.open": (
        "halo, ini polisi ya? {insult}!",
        "halo {hon}, kamu jelek! {laugh}",
        "petugas satu satu dua lemot!",
        "{insult}! {laugh}",
        "halo? {insult}",
        "woi, {insult}!",
    ),
    "prank.insult.mid": (
        "{laugh}",
        "kerja yang benar dong!",
        "gaji buta!",
        "{insult}",
        "ngapain angkat telepon, tidur saja sana",
        "kamu yang {insult}! {laugh}",
    ),
    "prank.insult.close": ("{laugh}", "sudah ah, dadah", "{insult}! {laugh}"),
    "prank.giggle.open": (
        "{laugh}",
        "halo... {laugh}",
        "halo? halo? {laugh}",
        "ha... halo? {laugh}",
        "{laugh} halo",
    ),
    "prank.giggle.mid": (
        "{laugh}",
        "kamu saja yang ngomong",
        "ssst, diam!",
        "bilang sesuatu dong",
        "{laugh}, matikan, matikan!",
        "ini benar polisi? {laugh}",
        "aduh, {laugh}",
    ),
    "prank.giggle.close": ("{laugh}", "{laugh}, matikan!", "dadah! {laugh}"),
    "prank.hoax_report.open": (
        "ada bom di {landmark}, {hon}",
        "ada tas mencurigakan di {landmark}, kayaknya bom",
        "ada penculikan anak {loc}",
        "ada mayat di {sungai|kebun|selokan} {loc}",
        "{report_any}",
        "{report_any}",
        "{report_any}",
    ),
    "prank.hoax_report.mid": (
        "pokoknya {rel} {landmark}",
        "tidak usah tanya nama saya, cepat saja datang",
        "{detail_any}",
        "{detail_any}",
        "{location_any}",
        "saya lihat sendiri tadi",
    ),
    "prank.hoax_report.close": (
        "pokoknya cepat ke sana",
        "sudah ya, saya sibuk",
        "iya {hon}, terima kasih",
        "cepat ya {hon}",
    ),
    "prank.silly_question.open": (
        "{hon}, ini nomor apa ya?",
        "bisa pesan {pizza|bakso|nasi goreng|martabak}?",
        "{hon} polisi sudah makan belum?",
        "bisa minta pulsa, {hon}?",
        "boleh kenalan, mbak?",
        "mbak, sudah punya pacar?",
        "{hon}, bisa bantu kerjakan pe er matematika saya?",
        "satu tambah satu berapa, {hon}?",
        "ini beneran satu satu dua? kok diangkat?",
        "boleh minta nomor we a nya?",
        "{hon}, jam berapa sekarang?",
        "cuma mau tes, nomornya aktif atau tidak",
    ),
    "prank.silly_question.mid": (
        "{laugh}",
        "serius {hon}, bisa tidak?",
        "ya sudah, kalau begitu {laugh}",
        "kenapa tidak bisa?",
        "ayolah {hon}",
        "sebentar saja {hon}",
    ),
    "prank.silly_question.close": ("{laugh}", "oke deh, dadah", "ya sudah, {laugh}"),
    "prank.silent_prank.open": (
        "hmm",
        "hmm hmm",
        "hihi",
        "ssst",
        "he he",
        "halo",
        "hmm... halo?",
        "ehem",
    ),
    "prank.silent_prank.mid": ("hmm", "hihi", "ssst", "{laugh}", "ehem"),
    "prank.silent_prank.close": ("{laugh}", "hihi", "hmm"),
    "insult": (
        "dasar bodoh",
        "bego",
        "payah",
        "dasar lemot",
        "kurang kerjaan",
        "dasar jelek",
        "dasar malas",
        "tukang tidur",
    ),
}

# --------------------------------------------------------------------------- English

_SLOTS_EN: dict[str, _Slot] = {
    "street": _STREETS,
    "kel": (
        "Kambu",
        "Mandonga",
        "Kebon Jeruk",
        "Tebet",
        "Kuta",
        "Seminyak",
        "Menteng",
        "Cempaka Putih",
        "Baledono",
    ),
    "landmark": (
        "the mosque",
        "the market",
        "the school",
        "the petrol station",
        "the hotel",
        "the beach",
        "the police station",
        "the hospital",
        "the bridge",
        "the mall",
        "the traffic lights",
        "the roundabout",
        "the bus terminal",
        "the church",
        "the football field",
        "the Circle K",
        "the Indomaret",
        "the bank",
    ),
    "rel": (
        "near",
        "in front of",
        "next to",
        "behind",
        "across from",
        "just past",
        "close to",
        "opposite",
    ),
    "loc": (
        "on {street}",
        "on {street}, {rel} {landmark}",
        "{rel} {landmark}, on {street}",
        "in {kel}",
        "on {street} in {kel}",
        "{rel} {landmark}",
        "at number {num}, {street}",
        "in {kel}, {rel} {landmark}",
        "on {street}, heading to {landmark}",
    ),
    "num": _int_slot(1, 150),
    "two_four": ("two", "three", "four", "two or three", "a few"),
    "many": ("ten", "twenty", "thirty", "fifty", "dozens of", "a lot of"),
    "age": _int_slot(2, 85),
    "minutes": ("five", "ten", "fifteen", "twenty", "thirty"),
    "own_name": ("{name}",),
    "name": (
        "John",
        "Sarah",
        "Michael",
        "Emma",
        "David",
        "Anna",
        "Tom",
        "Lisa",
        "Budi",
        "Dewi",
        "Mark",
        "Julia",
        "Peter",
        "Sophie",
    ),
    "phone": _phone_en,
    "hon": _HON_EN,
    "filler": ("uh", "um", "er", "uh...", "well", "like"),
    "vehicle": ("motorbike", "car", "truck", "bus", "taxi", "scooter", "minivan"),
    "color": ("black", "white", "red", "blue", "silver", "grey"),
    "relative": (
        "wife",
        "husband",
        "son",
        "daughter",
        "mother",
        "father",
        "friend",
        "grandmother",
        "grandfather",
        "baby",
        "colleague",
    ),
    "condition": (
        "collapsed",
        "can't breathe",
        "is unconscious",
        "fell in the bathroom",
        "is having a heart attack",
        "is having a seizure",
        "is bleeding a lot",
        "can't get up",
        "fell down the stairs",
        "is vomiting blood",
        "has chest pain",
        "was stung and her face is swelling",
    ),
    "open": (
        "",
        "",
        "hello, ",
        "hello? ",
        "hi, ",
        "please, ",
        "help, ",
        "yes hello, ",
        "hello, is this one one two? ",
        "excuse me, ",
        "{filler}, ",
    ),
    "open_short": ("", "hello, ", "hello? ", "{filler}, "),
    "urg_tail": ("", "", " please", ", please hurry", ", we need help fast", ", quickly"),
    "part": ("", "", " okay", " please"),
}

_EN: dict[str, tuple[str, ...]] = {
    "report.fire": (
        "there's a fire {loc}",
        "a house is on fire {loc}",
        "my neighbour's house is burning",
        "there's a lot of smoke coming from {landmark}, I think it's a fire",
        "the {shop|warehouse|restaurant|villa|kitchen} is on fire {loc}",
        "fire, fire! please send the fire brigade {loc}",
        "a car is burning {loc}",
    ),
    "detail.fire": (
        "the fire is getting bigger",
        "there are people still inside",
        "I think everyone got out",
        "the smoke is very thick",
        "it's spreading to the next house",
        "there's a gas tank inside",
        "it started maybe {minutes} minutes ago",
    ),
    "report.traffic_accident": (
        "there's been an accident {loc}",
        "a {vehicle} hit a {vehicle} {loc}",
        "a {vehicle} flipped over {loc}",
        "someone got hit by a car {loc}",
        "I crashed my scooter {loc}, my leg really hurts",
        "please send an ambulance, there's a crash {loc}",
    ),
    "detail.traffic_accident": (
        "there are {two_four} people hurt",
        "one man is not moving, his head is bleeding",
        "the driver ran away",
        "she's awake but I think her leg is broken",
        "the traffic is completely blocked",
        "it smells like petrol",
    ),
    "report.fallen_tree": (
        "a big tree fell across the road {loc}",
        "a tree fell on a {car|house|motorbike} {loc}",
        "there's a tree about to fall {loc}",
        "a tree came down on the power lines {loc}",
    ),
    "detail.fallen_tree": (
        "nobody can get through",
        "the power cable is sparking",
        "someone is trapped under it",
        "nobody is hurt, but the road is blocked",
        "it's still very windy",
    ),
    "report.riot": (
        "there's a big fight {loc}",
        "people are throwing stones {loc}",
        "a group of guys with machetes {loc}",
        "there's a riot {loc}, it's getting bad",
    ),
    "detail.riot": (
        "there are {many} people",
        "some of them have knives",
        "someone is already hurt",
        "they're breaking windows",
        "I'm hiding inside a shop",
    ),
    "report.flood": (
        "the water is coming into the house {loc}",
        "there's a flood {loc}, it's rising fast",
        "we're trapped by the flood {loc}",
        "the river overflowed {loc}",
    ),
    "detail.flood": (
        "the water is up to my {knees|waist|chest}",
        "there's an old man who can't get out",
        "we need a boat",
        "the power is off",
        "the current is very strong",
    ),
    "report.ambulance": (
        "I need an ambulance, my {relative} {condition}",
        "please send an ambulance, my {relative} {condition}",
        "my {relative} {condition}, please help",
        "someone collapsed {loc}",
        "my wife is in labour, her water broke",
        "someone is drowning at {landmark}",
    ),
    "detail.ambulance": (
        "{she|he} is {age} years old",
        "{she|he} is breathing but not answering",
        "{she|he} has {heart problems|diabetes|asthma}",
        "{her|his} lips are turning blue",
        "we don't have a car",
        "it happened {minutes} minutes ago",
    ),
    "report.drugs": (
        "I want to report drug dealing {loc}",
        "people are using drugs in a boarding house {loc}",
        "someone is selling pills to kids {loc}",
    ),
    "detail.drugs": (
        "they come every night",
        "there are {two_four} of them on motorbikes",
        "please don't use my name",
        "they're there right now",
    ),
    "report.security_disturbance": (
        "someone broke into my {villa|house|room} {loc}",
        "my scooter was stolen {loc}",
        "I got robbed {loc}, they took my bag",
        "there's a drunk man causing trouble {loc}",
        "someone is in my house, I'm hiding in the bathroom",
        "a man with a knife {loc}",
    ),
    "detail.security_disturbance": (
        "there were {two_four} of them",
        "he's wearing a black jacket",
        "they went towards {landmark}",
        "they took my passport and phone",
        "he's still here",
        "I'm really scared",
    ),
    "location": (
        "{loc}",
        "I'm {loc}",
        "it's {loc}",
        "{filler}, {loc}",
        "I don't know the street name, {rel} {landmark}",
        "we're staying at a villa {loc}",
    ),
    "identity": (
        "my name is {name}",
        "I'm {name}",
        "my number is {phone}",
        "I'm {name}, my number is {phone}",
        "I'm just passing by",
    ),
    "urgency": (
        "please hurry",
        "please, it's really bad",
        "how long will it take?",
        "please come quickly",
        "help, please",
    ),
    "closing.emergency": (
        "okay, thank you",
        "thank you, please hurry",
        "okay, I'll wait here",
        "yes, thank you so much",
        "okay, okay, thanks",
    ),
    "request.phone_locked": (
        "my phone is locked, it only allows emergency calls, how do I unlock it?",
        "sorry, I forgot my phone pattern",
        "my kid locked my phone and called this number",
        "my sim card is blocked, can you help?",
    ),
    "detail.phone_locked": (
        "it's a {Samsung|Oppo|Xiaomi}",
        "I tried many times",
        "where should I go?",
    ),
    "request.no_signal": (
        "there's no signal here at all",
        "my phone says emergency calls only",
        "the network has been down since yesterday",
    ),
    "detail.no_signal": (
        "my provider is Telkomsel",
        "for {two_four} days now",
        "everyone here has the same problem",
    ),
    "request.pdam_water": (
        "there's no water at my house since {two_four} days",
        "a water pipe is leaking {loc}",
        "the tap water is brown",
    ),
    "detail.pdam_water": (
        "I called the water company but no answer",
        "the whole street has no water",
    ),
    "request.pln_power_cut": (
        "the power is out in {kel}",
        "we have no electricity since this afternoon",
        "a power line is down {loc}",
    ),
    "detail.pln_power_cut": ("it's been {two_four} hours", "the whole area is dark"),
    "request.street_light_out": (
        "the street lights {loc} are out, it's very dark",
        "the traffic light at {landmark} is not working",
    ),
    "detail.street_light_out": ("it's been like this for weeks", "people fall there at night"),
    "request.damaged_road": ("there's a huge pothole {loc}", "the road {loc} is badly damaged"),
    "detail.damaged_road": ("motorbikes keep falling there", "it's very deep"),
    "request.information": (
        "what's the number of the nearest police station?",
        "where is a twenty four hour pharmacy?",
        "how do I report a lost passport?",
        "what is this number for?",
        "where is the nearest hospital?",
        "how do I get to {landmark}?",
    ),
    "detail.information": ("I'm a tourist here", "near {landmark}", "what should I do?"),
    "ne_extra": ("so what should I do?", "can you help me?", "I'm {loc}"),
    "closing.non_emergency": (
        "oh okay, thank you",
        "oh, sorry, wrong number then",
        "okay, I'll call them",
        "alright, thanks for the information",
    ),
    "prank.fake_incident.open": (
        "there's a fire in my house!",
        "help, there's a tiger at {landmark}!",
        "there's a ghost in my room!",
        "an alien took my friend!",
    ),
    "prank.fake_incident.mid": (
        "{laugh}",
        "just kidding, {laugh}",
        "come quickly! {laugh}",
        "shh, be quiet",
        "it's a prank! {laugh}",
    ),
    "prank.fake_incident.close": ("{laugh}", "bye! {laugh}", "gotcha! {laugh}"),
    "prank.insult.open": (
        "hello, are you the police? {insult}!",
        "{insult}! {laugh}",
        "hey, {insult}",
    ),
    "prank.insult.mid": ("{laugh}", "{insult}", "do your job!", "go back to sleep"),
    "prank.insult.close": ("{laugh}", "bye, {insult}"),
    "prank.giggle.open": ("{laugh}", "hello... {laugh}", "hello? {laugh}"),
    "prank.giggle.mid": (
        "{laugh}",
        "you talk!",
        "shh!",
        "say something",
        "hang up, hang up! {laugh}",
    ),
    "prank.giggle.close": ("{laugh}", "bye! {laugh}"),
    "prank.hoax_report.open": (
        "there's a bomb at {landmark}",
        "a child was kidnapped {loc}",
        "there's a dead body {loc}",
        "{report_any}",
        "{report_any}",
    ),
    "prank.hoax_report.mid": (
        "just come quickly",
        "don't ask my name",
        "{detail_any}",
        "{location_any}",
        "I saw it myself",
    ),
    "prank.hoax_report.close": ("just get there fast", "I have to go", "okay, thank you"),
    "prank.silly_question.open": (
        "can I order a pizza?",
        "what is this number?",
        "have you had lunch?",
        "can I have your number?",
        "what's one plus one?",
        "is this really the emergency number?",
    ),
    "prank.silly_question.mid": ("{laugh}", "seriously, can you?", "why not?", "come on"),
    "prank.silly_question.close": ("{laugh}", "okay bye"),
    "prank.silent_prank.open": ("hmm", "hmm hmm", "hehe", "shh", "hello", "ahem"),
    "prank.silent_prank.mid": ("hmm", "hehe", "shh", "{laugh}"),
    "prank.silent_prank.close": ("{laugh}", "hehe", "hmm"),
    "insult": ("stupid", "idiot", "you're so slow", "loser", "lazy cop"),
}

_HOAXABLE = ("fire", "traffic_accident", "ambulance", "security_disturbance", "riot")

# Per-call regional colour for Indonesian callers: place names and particles that belong
# together (a Kendari caller does not say "nggih" about a street in Jakarta).
_REGIONS_ID: dict[str, dict[str, tuple[str, ...]]] = {
    "kendari": {
        "street": (
            "Jalan Saranani",
            "Jalan Abdullah Silondae",
            "Jalan Edi Sabara",
            "Jalan Bunggasi",
            "Jalan Malaka",
            "Jalan Sam Ratulangi",
            "Jalan Ahmad Yani",
            "Jalan Pattimura",
            "jalan poros",
            "jalan baipas",
            "Jalan Mawar",
            "Jalan Hasanuddin",
        ),
        "kel": (
            "Kelurahan Kambu",
            "Kelurahan Anduonohu",
            "Kelurahan Wua Wua",
            "Kelurahan Mandonga",
            "Kelurahan Lepo Lepo",
            "Kelurahan Puuwatu",
            "Kelurahan Kadia",
            "Kelurahan Baruga",
            "Kelurahan Poasia",
            "Kelurahan Kemaraya",
            "Kampung Salo",
        ),
        "part": ("", "", "", " mi", " toh", " ji", " kodong", " ini"),
    },
    "purworejo": {
        "street": (
            "Jalan Tentara Pelajar",
            "Jalan Kolonel Sugiyono",
            "Jalan Magelang",
            "Jalan Raya Kutoarjo",
            "Jalan Ahmad Yani",
            "Jalan Diponegoro",
            "Jalan Brigjen Katamso",
            "Jalan Veteran",
            "Jalan Kartini",
            "jalan raya",
        ),
        "kel": (
            "Kelurahan Pangenjurutengah",
            "Kelurahan Baledono",
            "Kelurahan Doplang",
            "Kelurahan Cangkrep",
            "Kelurahan Sindurjan",
            "Desa Bayan",
            "Desa Loano",
            "Desa Butuh",
        ),
        "part": ("", "", "", " nggih", " lho", " niku", " to", " ini"),
    },
    "jakarta": {
        "street": (
            "Jalan Daan Mogot",
            "Jalan Hayam Wuruk",
            "Jalan Gajah Mada",
            "Jalan Kramat Raya",
            "Jalan Raya Bogor",
            "Jalan Casablanca",
            "Jalan Pramuka",
            "Jalan Kalimalang",
            "Jalan Sudirman",
            "Jalan Gatot Subroto",
        ),
        "kel": (
            "Kelurahan Kebon Jeruk",
            "Kelurahan Tebet Timur",
            "Kelurahan Cempaka Putih",
            "Kelurahan Pademangan",
            "Kelurahan Cilandak",
            "Kelurahan Kampung Melayu",
            "Kelurahan Rawamangun",
            "Kelurahan Duren Sawit",
            "Kampung Bali",
        ),
        "part": ("", "", "", " dong", " nih", " sih", " deh", " ini"),
    },
}

_Overrides = Mapping[str, tuple[str, ...]]
_NO_OVERRIDES: _Overrides = {}


def _bank(language: str) -> tuple[Mapping[str, _Slot], Mapping[str, tuple[str, ...]]]:
    return (_SLOTS_ID, _ID) if language == "id" else (_SLOTS_EN, _EN)


# --------------------------------------------------------------------------- expansion


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _expand(
    rng: np.random.Generator, template: str, language: str, over: _Overrides = _NO_OVERRIDES
) -> str:
    """Fill every ``{slot}`` / ``{a|b}`` in ``template``, innermost first.

    ``over`` replaces slot option lists for one call (its honorific, its region).
    """
    slots, bank = _bank(language)

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if "|" in key:
            return _pick(rng, key.split("|"))
        if key in over:
            return _pick(rng, over[key])
        if key == "laugh":
            return laughter_text(rng)
        if key in ("report_any", "detail_any"):
            # Hoaxes borrow the wording of real reports: only the caller's intent differs.
            stage = key.split("_")[0]
            return _pick(rng, bank[f"{stage}.{_pick(rng, _HOAXABLE)}"])
        if key == "location_any":
            return _pick(rng, bank["location"])
        if key in slots:
            slot = slots[key]
            return slot(rng) if callable(slot) else _pick(rng, slot)
        if key in bank:
            return _pick(rng, bank[key])
        raise KeyError(f"unknown phrase slot {key!r}")  # a bug in the banks, not user input

    text = template
    for _ in range(12):  # slots nest a few levels at most
        new = _SLOT_RE.sub(repl, text)
        if new == text:
            break
        text = new
    return _tidy(text)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.!?])", r"\1", text)
    text = re.sub(r",\s*,", ",", text)
    text = re.sub(r"^[,\s]+", "", text)
    return text[:1].upper() + text[1:] if text else text


def _say(
    rng: np.random.Generator,
    key: str,
    language: str,
    over: _Overrides = _NO_OVERRIDES,
    used: set[str] | None = None,
) -> str:
    """One sentence from bank ``key``; avoids sentences already in ``used`` if it can."""
    _, bank = _bank(language)
    text = ""
    for _ in range(6):
        text = _expand(rng, _pick(rng, bank[key]), language, over)
        if used is None or text not in used:
            break
    if used is not None:
        used.add(text)
    return text


# --------------------------------------------------------------------------- validation


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise InvalidParameterError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )


def _check_language(language: str) -> None:
    if language not in _LANGUAGES:
        raise InvalidParameterError(f"language must be one of {_LANGUAGES}, got {language!r}")


def _check_label(label: str) -> None:
    if label not in LABELS:
        raise InvalidParameterError(f"label must be one of {LABELS}, got {label!r}")


def _check_topic(label: str, topic: str) -> None:
    _check_label(label)
    if topic not in _TOPICS[label]:
        raise InvalidParameterError(
            f"topic for label {label!r} must be one of {_TOPICS[label]}, got {topic!r}"
        )


def _check_count(name: str, value: int | None, *, lo: int, hi: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise InvalidParameterError(f"{name} must be None or an int in [{lo}, {hi}], got {value!r}")


_CALLER_KINDS: tuple[str, ...] = ("adult_male", "adult_female", "child", "elderly")


def _check_caller_kind(caller_kind: str | None) -> None:
    if caller_kind is not None and caller_kind not in _CALLER_KINDS:
        raise InvalidParameterError(
            f"caller_kind must be None or one of {_CALLER_KINDS}, got {caller_kind!r}"
        )


# --------------------------------------------------------------------------- public API


def pick_topic(rng: np.random.Generator, *, label: str) -> str:
    """Draw the incident / topic / prank kind of a call.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draw.
    label : str
        ``"emergency"``, ``"non_emergency"``, ``"prank"`` or ``"ghost"``.

    Returns
    -------
    str
        One of :data:`EMERGENCY_INCIDENTS`, :data:`NON_EMERGENCY_TOPICS` or
        :data:`PRANK_KINDS`, weighted by how often each occurs; ``"none"`` for ghost.
    """
    _check_rng(rng)
    _check_label(label)
    topics = _TOPICS[label]
    return topics[int(rng.choice(len(topics), p=_TOPIC_WEIGHTS[label]))]


def _opener(template: str) -> str:
    # "Halo pak, pak polisi, ..." sounds wrong: no honorific opener before an honorific.
    return "{open_short}" if template.startswith(("{hon}", "{relative}")) else "{open}"


_CALLER_NAMES_ID: dict[str, tuple[str, ...]] = {
    "adult_male": ("{name_m}",),
    "adult_female": ("{name_f}",),
    "child": ("Dimas", "Putri", "Rizky", "Nabila", "Bima", "Salsa", "Aisyah", "Fajar"),
    "elderly": ("{name_m}", "{name_f}"),
}


def _caller_overrides(
    rng: np.random.Generator, language: str, caller_kind: str | None
) -> dict[str, tuple[str, ...]]:
    """Per-call choices: how the caller addresses the call-taker, where they live, who
    they are (a woman does not introduce herself as "Budi")."""
    hon = _HON_ID if language == "id" else _HON_EN
    over: dict[str, tuple[str, ...]] = {"hon": (_pick(rng, hon),)}
    if language == "id":
        over.update(_REGIONS_ID[_pick(rng, tuple(_REGIONS_ID))])
        if caller_kind is not None:
            # Only the caller's own name: third parties ("rumah {name}") stay random.
            over["own_name"] = _CALLER_NAMES_ID[caller_kind]
    return over


def _emergency_turns(
    rng: np.random.Generator,
    topic: str,
    language: str,
    n: int,
    over: _Overrides,
    *,
    hoax: bool = False,
) -> list[str]:
    report = _pick(rng, _bank(language)[1][f"report.{topic}"])
    opening = _expand(rng, _opener(report) + report + "{urg_tail}", language, over)
    if n == 1:
        return [opening]
    middle_keys = ["location", f"detail.{topic}"]
    extras = [f"detail.{topic}", "identity", "urgency", f"detail.{topic}"]
    if hoax:
        extras = ["prank.hoax_report.mid", f"detail.{topic}", "urgency", "prank.hoax_report.mid"]
    middle_keys += [extras[int(i)] for i in rng.permutation(len(extras))]
    while len(middle_keys) < n - 2:
        middle_keys.append(_pick(rng, (f"detail.{topic}", "urgency", "location")))
    closing_key = "prank.hoax_report.close" if hoax else "closing.emergency"
    used = {opening}
    turns = [opening] + [_say(rng, k, language, over, used) for k in middle_keys[: n - 2]]
    return [*turns, _say(rng, closing_key, language, over, used)]


def _scripted_turns(
    rng: np.random.Generator, prefix: str, language: str, n: int, over: _Overrides
) -> list[str]:
    """Opening, ``n - 2`` middle turns and a closing from ``{prefix}.open/.mid/.close``."""
    used: set[str] = set()
    turns = [_say(rng, f"{prefix}.open", language, over, used)]
    if n == 1:
        return turns
    turns += [_say(rng, f"{prefix}.mid", language, over, used) for _ in range(n - 2)]
    return [*turns, _say(rng, f"{prefix}.close", language, over, used)]


_DEFAULT_TURNS: dict[str, tuple[int, int]] = {
    "emergency": (3, 6),
    "non_emergency": (2, 4),
    "fake_incident": (2, 4),
    "insult": (1, 4),
    "giggle": (1, 3),
    "hoax_report": (3, 5),
    "silly_question": (1, 3),
    "silent_prank": (1, 2),
}


def caller_turns(
    rng: np.random.Generator,
    *,
    label: str,
    topic: str,
    language: str = "id",
    n_turns: int | None = None,
    caller_kind: str | None = None,
) -> list[str]:
    """The caller's successive utterances in one call.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    label : str
        One of :data:`LABELS`.
    topic : str
        From :func:`pick_topic` for the same label (``"none"`` for ghost).
    language : str
        ``"id"`` or ``"en"``.
    n_turns : int or None
        Exact number of turns (1..30); ``None`` draws a typical number for the label.
    caller_kind : str or None
        The caller's :attr:`Voice.kind`, so that the name the caller gives fits the
        voice. ``None`` draws names freely.

    Returns
    -------
    list of str
        Non-empty utterances in call order. Emergency: report, location, details,
        closing. Non-emergency: request, details, closing. Prank: depends on the kind
        (laughter, mild insults, silly questions, or a hoax worded like a real report).
        Ghost: always ``[]``, the caller never speaks. Within a call the caller keeps
        one honorific for the call-taker and one region (streets, particles).
    """
    _check_rng(rng)
    _check_topic(label, topic)
    _check_language(language)
    _check_count("n_turns", n_turns, lo=1, hi=30)
    _check_caller_kind(caller_kind)
    if label == "ghost":
        return []
    key = topic if label == "prank" else label
    lo, hi = _DEFAULT_TURNS[key]
    n = int(n_turns) if n_turns is not None else int(rng.integers(lo, hi + 1))
    over = _caller_overrides(rng, language, caller_kind)

    if label == "emergency":
        return _emergency_turns(rng, topic, language, n, over)
    if label == "non_emergency":
        request = _pick(rng, _bank(language)[1][f"request.{topic}"])
        turns = [_expand(rng, _opener(request) + request, language, over)]
        if n == 1:
            return turns
        used = set(turns)
        for i in range(n - 2):
            key = f"detail.{topic}" if i % 2 == 0 else "ne_extra"
            turns.append(_say(rng, key, language, over, used))
        return [*turns, _say(rng, "closing.non_emergency", language, over, used)]
    if topic == "hoax_report" and rng.random() < 0.5:
        # Half the hoaxes copy a real report's whole structure: only the intent differs.
        return _emergency_turns(rng, _pick(rng, _HOAXABLE), language, n, over, hoax=True)
    return _scripted_turns(rng, f"prank.{topic}", language, n, over)


_GREETINGS_ID: tuple[str, ...] = (
    "satu satu dua, selamat {tod}, ada yang bisa dibantu?",
    "layanan darurat satu satu dua, selamat {tod}, dengan {ct_name}, ada yang bisa kami bantu?",
    "kol senter satu satu dua {city}, selamat {tod}, ada yang bisa dibantu?",
    "selamat {tod}, satu satu dua, ada yang bisa kami bantu?",
    "halo, satu satu dua, selamat {tod}, dengan petugas {ct_name}, silakan",
    "satu satu dua {city}, selamat {tod}, dengan {ct_name}, ada keadaan darurat apa?",
    "selamat {tod}, layanan darurat satu satu dua {city}, ada yang bisa dibantu?",
    "satu satu dua, dengan {ct_name}, selamat {tod}, ada yang bisa saya bantu?",
)
_GREETINGS_EN: tuple[str, ...] = (
    "one one two emergency, how can I help?",
    "good {tod}, one one two emergency, how can I help you?",
    "one one two, what's your emergency?",
    "emergency service one one two, this is {ct_name}, how can I help?",
    "one one two {city}, good {tod}, what is your emergency?",
)
_CT_NAMES = ("Rina", "Andi", "Dewi", "Yusuf", "Sari", "Fajar", "Nita", "Bayu", "Wulan", "Hendra")
_CITIES = ("Kota Kendari", "Kabupaten Purworejo", "Jakarta", "Kendari", "Purworejo")
_CITIES_EN = ("Jakarta", "Bali", "Kendari", "Denpasar")


def _time_of_day(rng: np.random.Generator, hour: int, language: str) -> str:
    if language == "en":
        if 4 <= hour < 12:
            return "morning"
        return "afternoon" if 12 <= hour < 18 else "evening"
    if hour < 4:
        # After midnight call-takers say either: "malam" (still night) or "pagi" (dini hari).
        return "malam" if rng.random() < 0.6 else "pagi"
    if hour < 11:
        return "pagi"
    if hour < 15:
        return "siang"
    return "sore" if hour < 18 else "malam"


def call_taker_greeting(rng: np.random.Generator, *, hour: int, language: str = "id") -> str:
    """How the call-taker answers.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    hour : int
        Local hour of the call, 0..23. Indonesian: pagi 4..10, siang 11..14, sore 15..17,
        malam 18..3 (0..3 is malam or pagi at random, both are heard).
        English: morning 4..11, afternoon 12..17, evening otherwise.
    language : str
        ``"id"`` or ``"en"``.

    Returns
    -------
    str
        E.g. "Satu satu dua, selamat pagi, ada yang bisa dibantu?".
    """
    _check_rng(rng)
    _check_language(language)
    if isinstance(hour, bool) or not isinstance(hour, int | np.integer) or not 0 <= hour <= 23:
        raise InvalidParameterError(f"hour must be an int in [0, 23], got {hour!r}")
    templates = _GREETINGS_ID if language == "id" else _GREETINGS_EN
    template = _pick(rng, templates)
    tod = _time_of_day(rng, int(hour), language)
    text = template.replace("{tod}", tod)
    cities = _CITIES if language == "id" else _CITIES_EN
    text = text.replace("{ct_name}", _pick(rng, _CT_NAMES)).replace("{city}", _pick(rng, cities))
    return _tidy(text)


# Call-taker banks: acknowledgements, questions per stage, dispatch per incident.
_CT_ID: dict[str, tuple[str, ...]] = {
    "ack": ("baik", "iya", "baik {hon2}", "oke", "iya {hon2}", "baik, baik", "ya", ""),
    "hon2": ("pak", "bu", "bapak", "ibu", "mas", "mbak", "dik"),
    "ask_location": (
        "di mana lokasinya?",
        "lokasinya di mana, {hon2}?",
        "alamat lengkapnya di mana?",
        "bisa sebutkan alamatnya?",
        "di jalan apa, {hon2}?",
        "dekat apa lokasinya?",
        "kejadiannya di mana, {hon2}?",
    ),
    "ask_detail.fire": (
        "apa yang terbakar, {hon2}?",
        "ada korban atau orang di dalam?",
        "apinya sudah sebesar apa?",
        "sudah berapa rumah yang kena?",
    ),
    "ask_detail.traffic_accident": (
        "berapa korbannya?",
        "korbannya sadar atau tidak?",
        "kendaraan apa saja yang terlibat?",
        "ada yang luka parah?",
    ),
    "ask_detail.fallen_tree": (
        "apakah ada korban?",
        "jalannya tertutup total?",
        "ada kabel listrik yang kena?",
    ),
    "ask_detail.riot": (
        "berapa orang kira-kira?",
        "ada yang bawa senjata tajam?",
        "ada korban luka?",
    ),
    "ask_detail.flood": (
        "ketinggian airnya sudah berapa?",
        "ada warga yang terjebak?",
        "ada orang tua atau anak-anak yang perlu dievakuasi?",
    ),
    "ask_detail.ambulance": (
        "pasiennya sadar?",
        "umurnya berapa, {hon2}?",
        "masih bernapas?",
        "keluhannya apa, {hon2}?",
    ),
    "ask_detail.drugs": (
        "berapa orang pelakunya?",
        "sekarang mereka masih di lokasi?",
        "ciri-cirinya bagaimana?",
    ),
    "ask_detail.security_disturbance": (
        "pelakunya masih di lokasi?",
        "ciri-ciri pelakunya bagaimana?",
        "ada yang terluka?",
        "pelakunya bawa senjata?",
    ),
    "ask_name": (
        "dengan siapa saya bicara?",
        "nama {hon2} siapa?",
        "boleh tahu namanya, {hon2}?",
        "nomor yang bisa dihubungi berapa, {hon2}?",
    ),
    "calm": (
        "{hon2} tenang dulu ya",
        "tarik napas dulu, {hon2}, pelan-pelan",
        "tenang ya {hon2}, kami bantu",
        "jangan panik, {hon2}",
    ),
    "dispatch.fire": (
        "kami teruskan ke pemadam kebakaran, mobil damkar segera meluncur",
        "petugas damkar sedang menuju lokasi",
    ),
    "dispatch.traffic_accident": (
        "ambulans dan polisi lalu lintas segera ke lokasi",
        "tim kami segera meluncur, ambulans sudah kami hubungi",
    ),
    "dispatch.fallen_tree": (
        "kami teruskan ke be pe be de dan dinas pertamanan",
        "petugas segera ke lokasi untuk evakuasi pohon",
    ),
    "dispatch.riot": ("anggota polsek segera meluncur", "kami teruskan ke kepolisian terdekat"),
    "dispatch.flood": (
        "tim be pe be de dan tim sar segera ke lokasi",
        "kami kirim perahu karet dan petugas evakuasi",
    ),
    "dispatch.ambulance": ("ambulans segera meluncur", "kami kirim ambulans sekarang, {hon2}"),
    "dispatch.drugs": (
        "laporan {hon2} kami teruskan ke satuan narkoba",
        "kami teruskan ke polres, identitas {hon2} kami rahasiakan",
    ),
    "dispatch.security_disturbance": (
        "patroli polisi segera ke lokasi",
        "anggota kami segera meluncur, {hon2}",
    ),
    "instruct.fire": ("jauhi lokasi api ya", "jangan masuk lagi ke dalam rumah"),
    "instruct.traffic_accident": ("jangan pindahkan korbannya dulu", "amankan lokasi ya, {hon2}"),
    "instruct.fallen_tree": ("jangan dekati kabel listriknya", "minta warga menjauh dulu"),
    "instruct.riot": ("tetap di dalam rumah ya", "jangan mendekat ke lokasi"),
    "instruct.flood": ("naik ke tempat yang lebih tinggi", "matikan listrik kalau bisa"),
    "instruct.ambulance": (
        "miringkan badannya kalau muntah",
        "jangan diberi minum dulu",
        "temani terus pasiennya, {hon2}",
    ),
    "instruct.drugs": ("jangan bertindak sendiri ya", "tetap jaga jarak dari mereka"),
    "instruct.security_disturbance": (
        "kunci pintunya, tetap di tempat aman",
        "jangan kejar pelakunya sendiri",
    ),
    "close": (
        "tetap di lokasi ya, {hon2}",
        "kalau ada perkembangan, hubungi kami lagi",
        "terima kasih laporannya, {hon2}",
        "ha pe nya tetap aktif ya",
    ),
    "ne_ask": (
        "maksudnya bagaimana, {hon2}?",
        "bisa diulangi, {hon2}?",
        "alamatnya di mana, {hon2}?",
        "sudah berapa lama, {hon2}?",
    ),
    "ne_answer.phone_locked": (
        "untuk ha pe terkunci silakan ke gerai operator ya, {hon2}",
        "ini saluran darurat, untuk kunci ha pe silakan ke konter resmi",
    ),
    "ne_answer.no_signal": ("untuk gangguan sinyal silakan hubungi operator seluler {hon2}",),
    "ne_answer.pdam_water": (
        "untuk gangguan air silakan hubungi pe de a em",
        "kami teruskan ke pe de a em ya",
    ),
    "ne_answer.pln_power_cut": (
        "untuk gangguan listrik silakan hubungi pe el en satu dua tiga",
        "kami teruskan laporannya ke pe el en",
    ),
    "ne_answer.street_light_out": (
        "kami teruskan ke dinas perhubungan ya",
        "laporannya kami catat dan teruskan ke dinas terkait",
    ),
    "ne_answer.damaged_road": (
        "kami teruskan ke dinas pekerjaan umum",
        "laporannya kami catat, {hon2}",
    ),
    "ne_answer.information": (
        "nomornya nanti kami kirim lewat es em es ya",
        "untuk informasi itu silakan ke kantor terkait, {hon2}",
    ),
    "ne_close": (
        "ini saluran darurat ya, {hon2}, terima kasih",
        "ada lagi yang bisa dibantu?",
        "baik, terima kasih sudah menghubungi satu satu dua",
    ),
    "prank_react": (
        "halo? maaf, ini benar ada kejadian?",
        "halo? {hon2}?",
        "tolong jangan main-main dengan nomor darurat",
        "saluran ini untuk keadaan darurat, {hon2}",
        "halo? ini siapa?",
        "{hon2}, ini nomor darurat, bukan untuk bercanda",
        "nomor {hon2} tercatat di sistem kami ya",
    ),
    "prank_close": (
        "saya tutup ya",
        "kalau tidak ada keadaan darurat saya tutup",
        "tolong jangan ulangi lagi ya, {hon2}",
    ),
    "filler": ("iya?", "halo? masih di sana?", "baik, lalu?", "terus, {hon2}?", "iya, saya dengar"),
}
_CT_ID.update(
    {
        # Hoaxes: the call-taker cannot know which incident the caller will invent.
        "ask_detail.generic": (
            "bisa dijelaskan kejadiannya, {hon2}?",
            "ada korban?",
            "sekarang kondisinya bagaimana?",
            "kejadiannya kapan, {hon2}?",
        ),
        "dispatch.generic": (
            "petugas kami segera ke lokasi",
            "kami teruskan ke unit terkait, segera meluncur",
        ),
        "instruct.generic": ("tetap di tempat yang aman ya, {hon2}", "jangan mendekat dulu"),
        "hello": ("halo?", "halo? halo?", "halo, {hon2}?", "halo, ada yang bisa dibantu?"),
    }
)

_CT_EN: dict[str, tuple[str, ...]] = {
    "ack": ("okay", "alright", "yes", "I understand", "okay {hon2}", ""),
    "hon2": ("sir", "madam"),
    "ask_location": (
        "where are you?",
        "what's the address?",
        "where exactly is this?",
        "what is near you?",
    ),
    "ask_detail.fire": ("is anyone inside?", "what is burning?", "how big is the fire?"),
    "ask_detail.traffic_accident": ("how many people are hurt?", "is the victim conscious?"),
    "ask_detail.fallen_tree": ("is anyone hurt?", "is the road completely blocked?"),
    "ask_detail.riot": ("how many people?", "do they have weapons?"),
    "ask_detail.flood": ("how high is the water?", "is anyone trapped?"),
    "ask_detail.ambulance": (
        "is the patient breathing?",
        "how old is the patient?",
        "is the patient awake?",
    ),
    "ask_detail.drugs": ("how many people?", "are they there now?"),
    "ask_detail.security_disturbance": (
        "is the person still there?",
        "are you safe?",
        "can you describe him?",
    ),
    "ask_name": ("what's your name?", "what number can we reach you on?"),
    "calm": ("stay calm, {hon2}", "take a breath, we're helping you"),
    "dispatch.fire": ("the fire brigade is on the way",),
    "dispatch.traffic_accident": ("an ambulance and the police are on the way",),
    "dispatch.fallen_tree": ("we're sending a team to clear it",),
    "dispatch.riot": ("police are on the way",),
    "dispatch.flood": ("the rescue team is on the way",),
    "dispatch.ambulance": ("an ambulance is on the way",),
    "dispatch.drugs": ("we'll pass this to the police",),
    "dispatch.security_disturbance": ("a police patrol is on the way",),
    "instruct.fire": ("stay away from the fire",),
    "instruct.traffic_accident": ("don't move the victim",),
    "instruct.fallen_tree": ("stay away from the cables",),
    "instruct.riot": ("stay inside",),
    "instruct.flood": ("go somewhere higher",),
    "instruct.ambulance": ("stay with the patient",),
    "instruct.drugs": ("don't approach them",),
    "instruct.security_disturbance": ("lock the door and stay where you are",),
    "close": ("stay where you are", "call us again if anything changes", "thank you for calling"),
    "ne_ask": ("what do you need?", "how long has it been like this?", "where are you?"),
    "ne_answer.phone_locked": ("for a locked phone please go to your provider's shop",),
    "ne_answer.no_signal": ("please contact your mobile provider",),
    "ne_answer.pdam_water": ("please contact the water company",),
    "ne_answer.pln_power_cut": ("please call the electricity company",),
    "ne_answer.street_light_out": ("we'll pass it to the transport office",),
    "ne_answer.damaged_road": ("we'll report it to public works",),
    "ne_answer.information": ("we'll send you the number by text",),
    "ne_close": ("this line is for emergencies, thank you", "anything else?"),
    "prank_react": (
        "hello? is there really an emergency?",
        "this is an emergency line",
        "please don't play with this number",
        "hello? who is this?",
    ),
    "prank_close": ("I'm hanging up now", "please don't call again for fun"),
    "filler": ("yes?", "hello? are you still there?", "go on", "I'm listening"),
}


_CT_EN.update(
    {
        "ask_detail.generic": ("can you tell me what happened?", "is anyone hurt?"),
        "dispatch.generic": ("officers are on their way",),
        "instruct.generic": ("stay somewhere safe",),
        "hello": ("hello?", "hello? hello?", "hello, can I help you?"),
    }
)

_CALLER_HONORIFICS_ID: dict[str, tuple[str, ...]] = {
    "adult_male": ("pak", "pak", "bapak", "mas"),
    "adult_female": ("bu", "bu", "ibu", "mbak"),
    "child": ("dik", "adik"),
    "elderly": ("pak", "bu", "bapak", "ibu"),
}
_CALLER_HONORIFICS_EN: dict[str, tuple[str, ...]] = {
    "adult_male": ("sir",),
    "adult_female": ("madam",),
    "child": ("", "buddy"),
    "elderly": ("sir", "madam"),
}


def _ct(
    rng: np.random.Generator,
    key: str,
    language: str,
    hon2: str,
    used: set[str],
    *,
    ack: bool = False,
) -> str:
    bank = _CT_ID if language == "id" else _CT_EN
    text = ""
    for _ in range(6):
        text = _pick(rng, bank[key])
        if ack and rng.random() < 0.6:
            text = f"{_pick(rng, bank['ack'])}, {text}"
        # Call-taker text only uses {hon2}: one honorific for the caller, all call long.
        text = _tidy(text.replace("{hon2}", hon2))
        if text not in used:
            break
    used.add(text)
    return text


def _caller_honorific(rng: np.random.Generator, language: str, caller_kind: str | None) -> str:
    table = _CALLER_HONORIFICS_ID if language == "id" else _CALLER_HONORIFICS_EN
    kind = caller_kind if caller_kind is not None else _pick(rng, _CALLER_KINDS)
    return _pick(rng, table[kind])


def call_taker_prompts(
    rng: np.random.Generator,
    *,
    label: str,
    topic: str,
    language: str = "id",
    n: int | None = None,
    caller_kind: str | None = None,
) -> list[str]:
    """Call-taker replies to put between the caller's turns, in order.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    label, topic : str
        As for :func:`caller_turns`. Hoax reports get the same prompts as real
        emergencies, because the call-taker cannot tell them apart.
    language : str
        ``"id"`` or ``"en"``.
    n : int or None
        Number of prompts (1..30); ``None`` gives 6. Ghost calls get
        :func:`call_taker_ghost_prompts`.
    caller_kind : str or None
        ``"adult_male"``, ``"adult_female"``, ``"child"`` or ``"elderly"`` (as
        :attr:`Voice.kind`): picks how the call-taker addresses the caller ("pak",
        "bu", "dik"). ``None`` draws one. The honorific stays the same for the call.

    Returns
    -------
    list of str
        ``n`` prompts. Emergency: location, details, name, dispatch, instructions,
        closing. Non-emergency: clarifying question, redirection, closing.
        Prank: normal questions first, then warnings and "saya tutup ya".
    """
    _check_rng(rng)
    _check_topic(label, topic)
    _check_language(language)
    _check_count("n", n, lo=1, hi=30)
    _check_caller_kind(caller_kind)
    count = 6 if n is None else int(n)
    if label == "ghost":
        return call_taker_ghost_prompts(rng, language=language, n=count)

    hon2 = _caller_honorific(rng, language, caller_kind)
    incident = "generic" if topic == "hoax_report" else topic
    if label == "emergency" or topic == "hoax_report":
        keys = [
            "ask_location",
            f"ask_detail.{incident}",
            "calm",
            "ask_name",
            f"ask_detail.{incident}",
            f"dispatch.{incident}",
            f"instruct.{incident}",
        ]
        if rng.random() < 0.5:
            keys.remove("calm")
        closing = "close"
    elif label == "non_emergency":
        keys = ["ne_ask", f"ne_answer.{topic}", "ne_ask"]
        closing = "ne_close"
    elif topic == "fake_incident":
        # Sounds real at first: the call-taker asks the usual questions, then catches on.
        keys = ["ask_location", "ask_detail.generic", "prank_react"]
        closing = "prank_close"
    elif topic in ("giggle", "silent_prank"):
        keys = ["hello", "hello", "prank_react"]
        closing = "prank_close"
    else:
        keys = ["prank_react", "prank_react", "prank_react"]
        closing = "prank_close"
    while len(keys) < count - 1:
        keys.append("filler" if label != "prank" else "prank_react")
    keys = keys[: count - 1] if count > 1 else []
    used: set[str] = set()
    prompts = [
        _ct(rng, k, language, hon2, used, ack=k.startswith(("ask", "dispatch", "ne_answer")))
        for k in keys
    ]
    prompts.append(_ct(rng, closing, language, hon2, used))
    return prompts


_GHOST_ID: dict[str, tuple[str, ...]] = {
    "open": (
        "halo?",
        "halo, satu satu dua, ada yang bisa dibantu?",
        "halo? dengan satu satu dua",
        "satu satu dua, halo?",
        "halo, selamat {tod}?",
    ),
    "mid": (
        "halo?",
        "halo? halo?",
        "halo, {hon2}?",
        "{hon2}? {hon2}?",
        "bapak ibu bisa dengar saya?",
        "halo, apakah ada keadaan darurat?",
        "kalau tidak bisa bicara, ketuk teleponnya ya",
        "suaranya tidak terdengar, {hon2}",
        "halo, lokasinya di mana?",
        "saya tidak dengar apa-apa ini",
        "halo? ini ha pe nya kepencet ya?",
        "tolong kunci layarnya ya, {hon2}",
        "halo, masih di sana?",
        "halo? ada orang?",
        "ada yang bisa dibantu, {hon2}?",
    ),
    "close": (
        "kalau tidak ada yang bicara saya tutup ya",
        "saya tutup ya teleponnya",
        "baik, teleponnya saya tutup",
        "halo? saya tutup ya, {hon2}",
    ),
}
_GHOST_EN: dict[str, tuple[str, ...]] = {
    "open": ("hello?", "one one two, how can I help?", "hello, one one two emergency?"),
    "mid": (
        "hello?",
        "hello? hello?",
        "can you hear me?",
        "is there an emergency?",
        "if you can't talk, tap the phone",
        "I can't hear anything",
        "hello, is anyone there?",
        "did you dial by mistake?",
    ),
    "close": (
        "if nobody answers I'm going to hang up",
        "I'm hanging up now",
        "okay, I'm ending the call",
    ),
}


def call_taker_ghost_prompts(
    rng: np.random.Generator, *, language: str = "id", n: int = 3
) -> list[str]:
    """What the call-taker says into a silent / pocket-dialled line.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    language : str
        ``"id"`` or ``"en"``.
    n : int
        Number of prompts, 1..30.

    Returns
    -------
    list of str
        ``n`` prompts: an opening "halo?", repeated "halo? halo?" style checks,
        and (for ``n >= 2``) a closing "kalau tidak ada yang bicara saya tutup ya".
    """
    _check_rng(rng)
    _check_language(language)
    _check_count("n", n, lo=1, hi=30)
    bank = _GHOST_ID if language == "id" else _GHOST_EN
    hon = _CT_ID["hon2"] if language == "id" else _CT_EN["hon2"]

    def fill(text: str) -> str:
        text = re.sub(r"\{hon2\}", lambda _m: _pick(rng, hon), text)
        return _tidy(text.replace("{tod}", _pick(rng, ("pagi", "siang", "sore", "malam"))))

    prompts = [fill(_pick(rng, bank["open"]))]
    if n == 1:
        return prompts
    mids = bank["mid"]
    order = [int(i) for i in rng.permutation(len(mids))]
    prompts += [fill(mids[order[i % len(order)]]) for i in range(n - 2)]
    prompts.append(fill(_pick(rng, bank["close"])))
    return prompts


_BACKGROUND_ID: tuple[str, ...] = (
    "eh, {name} sudah pulang belum?",
    "nanti sore jadi ke pasar, kan?",
    "harga {cabai|bawang|beras|telur|minyak goreng} naik lagi, sekarang {num} ribu sekilo",
    "jangan lupa jemput adik di sekolah",
    "sudah makan belum?",
    "tolong ambilkan {piring|gelas|kunci motor|remot}",
    "besok ada arisan di rumah bu {name_f}",
    "motornya sudah diservis?",
    "aduh, hujan lagi",
    "nonton apa sih?",
    "mas, kopinya satu ya",
    "berapa semuanya, bu?",
    "{num} ribu saja",
    "pemirsa, kembali lagi bersama kami dalam berita sore",
    "skor sementara dua satu untuk tuan rumah",
    "gol! gol! luar biasa!",
    "dapatkan sekarang juga, diskon lima puluh persen",
    "cuaca hari ini cerah berawan",
    "lagu berikutnya untuk pendengar setia di {kel}",
    "yang belum bayar iuran ronda, tolong segera ya",
    "anak-anak, ayo mandi, sudah sore",
    "ya ampun, aku lupa matikan kompor",
    "lagi di mana kamu?",
    "iya, nanti aku telepon lagi",
    "kemarin {name} beli motor baru",
    "mau pesan apa, mas?",
    "ini kembaliannya, bu",
    "awas, ada motor!",
    "sini, sini, duduk dulu",
    "ih, kamu itu lho",
    "besok libur, kan?",
    "bapak sudah berangkat kerja?",
    "mama, aku minta uang jajan",
    "jangan main hape terus",
)
_BACKGROUND_EN: tuple[str, ...] = (
    "did you see the game last night?",
    "can you pass me the salt?",
    "breaking news tonight from the capital",
    "we'll be right back after the break",
    "what time does the shop close?",
    "I'll call you later",
    "where did you put the keys?",
    "two coffees please",
    "how much is this one?",
    "it's going to rain again",
    "come on, we're going to be late",
    "turn the volume down a bit",
    "goal! what a shot!",
    "get it now with fifty percent off",
    "did {name} call you back?",
    "let's order some food",
)


def background_talk(rng: np.random.Generator, *, language: str = "id") -> str:
    """Ordinary talk for distant voices, TV, radio or a crowd behind the caller.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.
    language : str
        ``"id"`` or ``"en"``.

    Returns
    -------
    str
        One to three everyday sentences, unrelated to emergencies.
    """
    _check_rng(rng)
    _check_language(language)
    bank = _BACKGROUND_ID if language == "id" else _BACKGROUND_EN
    n = int(rng.integers(1, 4))
    sentences = [_expand(rng, _pick(rng, bank), language) for _ in range(n)]
    return " ".join(s if s[-1] in ".!?" else s + "." for s in sentences)


# Syllables and their shares: mostly "ha", giggly "hi"/"he", a few "hu"/"ki".
_LAUGH_SYLLABLES: tuple[str, ...] = ("ha", "hi", "he", "hu", "ki")
_LAUGH_P: tuple[float, ...] = (0.45, 0.22, 0.2, 0.05, 0.08)


def laughter_text(rng: np.random.Generator) -> str:
    """Laughter spelled so that espeak-ng says it, e.g. "hahaha", "hihihi, hahaha".

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every choice.

    Returns
    -------
    str
        One to three bursts of 2..7 repeated syllables ("ha", "hi", "he", "hu", "ki"),
        written together ("hahaha") or spaced ("ha ha ha"), sometimes a loud
        "huahahaha", with pauses between bursts.
    """
    _check_rng(rng)
    bursts = []
    for _ in range(int(rng.integers(1, 4))):
        syllable = _LAUGH_SYLLABLES[int(rng.choice(len(_LAUGH_SYLLABLES), p=_LAUGH_P))]
        count = int(rng.integers(2, 8))
        if syllable == "ha" and rng.random() < 0.15:
            burst = "hua" + "ha" * (count - 1)
        else:
            burst = ("" if rng.random() < 0.75 else " ").join([syllable] * count)
        bursts.append(burst)
    text = bursts[0]
    for burst in bursts[1:]:
        text += _pick(rng, (" ", ", ", "... ")) + burst
    return text
