"""Fixed vocabularies for the synthetic city: places, surnames, given names, employers.

Given-name characters are grouped so that, position by position, no two characters share a
toneless pinyin reading: two generated names in the same (county, birth date, sex) cell then
differ in both given-name characters, and only the planted twins read alike (HOMOPHONES).
"""

from data_contracts.policy import PROGRAMS

CITY = "马鞍山市"
# county code -> (name, weight of households, {township: [villages]})
COUNTIES = {
    "340503": ("花山区", 0.30, ["解放路街道", "桃源路街道", "霍里街道", "江东街道"]),
    "340504": ("雨山区", 0.28, ["平湖街道", "雨山街道", "安民街道", "银塘镇"]),
    "340506": ("博望区", 0.15, ["博望镇", "丹阳镇", "新市镇"]),
    "340521": ("当涂县", 0.27, ["姑孰镇", "黄池镇", "乌溪镇", "石桥镇", "大陇镇"]),
}
# Pay days (day of the period's own month): each county pays its first township on its own day,
# the next townships two days apart, the same days every month and for every program. All fall on
# days 5-20, so every period is paid within its month, and a planted duplicate paid ten days later
# stays within the following month's first days at most.
COUNTY_PAYDAY = {"340503": 5, "340504": 10, "340506": 15, "340521": 12}
TOWNSHIP_PAYDAY_STEP = 2
VILLAGE_STEMS = ["东湖", "西园", "南山", "北塘", "青山", "桃园", "新建", "和平", "光明", "幸福", "红旗", "长江"]
VILLAGE_KINDS = ["社区", "村"]
# birthplace region codes of people born outside the city (valid-looking GB/T 2260 codes)
OTHER_REGIONS = ["340522", "340523", "320102", "341181", "342401", "340104", "330106", "420106"]

# (surname, relative frequency in percent), the commonest Chinese surnames
SURNAMES = [
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.4), ("陈", 4.6), ("杨", 3.1), ("黄", 2.2), ("赵", 2.0),
    ("吴", 2.0), ("周", 1.9), ("徐", 1.5), ("孙", 1.5), ("马", 1.4), ("朱", 1.3), ("胡", 1.3), ("郭", 1.2),
    ("何", 1.2), ("林", 1.1), ("高", 1.1), ("罗", 0.9), ("郑", 0.8), ("梁", 0.8), ("谢", 0.7), ("宋", 0.6),
    ("唐", 0.6), ("许", 0.6), ("韩", 0.5), ("冯", 0.5), ("邓", 0.5), ("曹", 0.5), ("彭", 0.5), ("曾", 0.5),
    ("肖", 0.5), ("田", 0.4), ("董", 0.4), ("袁", 0.4), ("潘", 0.4), ("于", 0.3), ("蒋", 0.3), ("蔡", 0.3),
    ("余", 0.3), ("杜", 0.3), ("叶", 0.3), ("程", 0.3), ("苏", 0.3), ("魏", 0.3), ("吕", 0.3), ("丁", 0.3),
    ("任", 0.3), ("沈", 0.3), ("姚", 0.3), ("卢", 0.3), ("姜", 0.2), ("崔", 0.2), ("钟", 0.2), ("谭", 0.2),
    ("陆", 0.2), ("汪", 0.2), ("范", 0.2), ("金", 0.2), ("石", 0.2), ("廖", 0.2), ("贾", 0.2), ("夏", 0.2),
    ("欧阳", 0.05), ("司马", 0.02), ("诸葛", 0.01),
]
MALE_FIRST = list("建国志明伟军海平春文永德新晓家子宇浩天")
MALE_SECOND = list("华强勇峰林成刚杰涛斌辉波磊超鹏飞龙东亮")
FEMALE_FIRST = list("秀玉桂丽美淑春海红金凤晓静雪婷佳欣慧雅梦")
FEMALE_SECOND = list("英兰芳珍华梅霞娟琴萍燕云敏丹莉洁婷玲红")
# same toneless pinyin, another character: 王秀英 / 王秀瑛 (tests check the readings agree)
HOMOPHONES = {
    "华": "桦", "强": "蔷", "勇": "涌", "峰": "锋", "林": "琳", "成": "诚", "刚": "钢", "杰": "捷", "涛": "韬",
    "斌": "彬", "辉": "晖", "波": "播", "磊": "垒", "超": "钞", "鹏": "朋", "飞": "菲", "龙": "隆", "东": "冬",
    "亮": "谅", "英": "瑛", "兰": "岚", "芳": "方", "珍": "真", "梅": "玫", "霞": "侠", "娟": "鹃", "琴": "勤",
    "萍": "苹", "燕": "艳", "云": "芸", "敏": "珉", "丹": "郸", "莉": "俐", "洁": "杰", "婷": "亭", "玲": "铃",
    "红": "宏",
}
# minority (e.g. Uyghur) names are written given·family with a middle dot
MINORITY_FIRST = ["阿依古丽", "热依拉", "买买提", "艾力", "古丽娜尔", "迪丽拜尔", "帕提古丽", "努尔兰", "阿卜杜拉", "再努尔"]
MINORITY_LAST = ["吐尔逊", "阿不都", "艾海提", "买合木提", "司马义", "玉素甫", "热合曼", "依明", "卡德尔", "托合提"]

SERVANT_ROLES = ["公务员", "事业单位", "国有企业"]
CADRE_ROLES = ["村两委", "社区两委"]
EMPLOYERS = {
    "公务员": ["区民政局", "区财政局", "街道办事处", "区人社局", "区税务局"],
    "事业单位": ["区第一中学", "区人民医院", "区疾控中心", "街道社区卫生服务中心"],
    "国有企业": ["马钢集团", "市供电公司", "市自来水公司", "市公交集团"],
}
VEHICLE_TYPES = ["小型轿车", "小型越野客车", "中型客车", "轻型货车", "重型货车", "普通二轮摩托车", "三轮汽车", "残疾人专用车"]
VEHICLE_WEIGHTS = [0.62, 0.12, 0.01, 0.05, 0.01, 0.14, 0.04, 0.01]
EXEMPT_VEHICLES = {"普通二轮摩托车", "三轮汽车", "残疾人专用车"}
OCCUPATIONS = [("电工", "四级"), ("焊工", "四级"), ("养老护理员", "五级"), ("育婴员", "四级"), ("中式烹调师", "四级"),
               ("美发师", "五级"), ("叉车司机", "五级"), ("保育师", "四级"), ("家政服务员", "五级"), ("电子商务师", "三级")]
TRAINING_ORGS = ["市职业技能培训中心", "江东职业培训学校", "雨山技工学校", "当涂县就业培训中心", "博望区职业学校"]
PROVIDERS = ["颐康居家养老服务中心", "夕阳红养老服务站", "福寿康护理服务公司", "安馨居家养老服务社"]
SERVICE_TYPES = ["助餐", "助洁", "助浴", "助医", "陪护"]
DEATH_SOURCES = ["火化", "医院", "公安"]

PROGRAM_NAMES = PROGRAMS  # code -> Chinese name (data_contracts/policy.py)
# monthly standard amounts (yuan); GAOLING by age tier per POLICY.md
GAOLING_TIERS = [(100, 600), (90, 300), (80, 100)]
MONTHLY = {"DIBAO_PER_PERSON": 740, "TEKUN": 1150, "CANJI_SHENGHUO": 90, "CANJI_HULI": 100, "GUER": 1500}

# China 2020 census, share of population by 5-year age band (percent), 100+ last
AGE_BANDS = [5.5, 6.4, 6.3, 5.3, 5.3, 6.6, 8.7, 7.0, 6.9, 8.3, 8.6, 7.1, 5.2, 5.2, 3.6, 2.2, 1.4, 0.8, 0.3, 0.07, 0.01]
